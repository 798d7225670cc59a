"""``edgecv models``: the registry's names, where each resolves on this machine, licence and size."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from edgecv.registry import RegistryEntry

_WHERE = {
    "embedded": "embedded {}",
    "mirror": "mirror {}",
    "cache": "cache {}",
    "download": "download from {}",
    "none": "not available here: no URL",
}


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def models_command(as_json: bool) -> None:
    """List model names (edgecv's and EDGECV_REGISTRY's): where each resolves, licence and size.

    Nothing is downloaded: a name resolves to the copy shipped inside edgecv-core (embedded), a
    mirror folder (EDGECV_MODEL_DIR, the assets), the cache, or else a download from its URL.
    Local copies count only when their sha256 matches.
    """
    from edgecv import registry

    known = registry.entries()
    names = sorted(known, key=lambda name: name != registry.DEFAULT_MODEL)  # the default first
    records = [_record(name, known[name]) for name in names]
    if as_json:
        click.echo(json.dumps({"default": registry.DEFAULT_MODEL, "models": records}, indent=2))
        return
    width = max(len(_shown(r["name"])) for r in records) + len(" (default)")
    for r in records:
        name = _shown(r["name"]) + (" (default)" if r["default"] else "")
        where = _WHERE[r["source"]].format(_shown(r["location"] or ""))
        if r["problem"]:
            where = f"not usable: {_shown(r['problem'])}"
        licence = _shown(r["license"] or "licence unknown")
        click.echo(f"{name:<{width}}  {licence:<16} {_size(r['size']):>8}  {where}")
        if r["description"]:
            click.echo(f"{'':<{width}}  {_shown(r['description'])}")


def _record(name: str, entry: RegistryEntry) -> dict[str, Any]:
    from edgecv import registry
    from edgecv.errors import EdgecvError

    problem = ""
    try:
        found = registry.source(name, entry)
        kind, location = found.kind, found.location
    except EdgecvError as exc:  # e.g. a link in the cache: that name cannot resolve, the others still can
        kind, location, problem = "none", "", str(exc)
    return {
        "name": name,
        "default": name == registry.DEFAULT_MODEL,
        "source": kind,
        "location": location or None,
        "license": entry.license or None,
        "size": entry.size,
        "file": entry.file,
        "sha256": entry.sha256,
        "description": entry.description,
        "problem": problem or None,
    }


def _size(size: int | None) -> str:
    return "size ?" if size is None else f"{size / 1e6:.1f} MB"


def _shown(text: str) -> str:
    """A registry file's text for a terminal: control characters escaped, not obeyed."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)

"""The documentation keeps up with the code (in the spirit of Datasette's documentation tests).

- every hookspec in ``edgecv.hookspecs`` has a page ``docs/hooks/<name>.md`` with a section on its
  return value, and every page there belongs to a hook that still exists;
- every command of the ``edgecv`` click group is mentioned as ``edgecv <command>`` in README.md
  (read when the test runs, not at collection);
- every ``EDGECV_*`` environment variable named in ``core/src`` is documented in docs/plugins.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from edgecv import hookspecs
from edgecv.cli import cli

ROOT = Path(__file__).resolve().parents[2]
HOOK_DOCS = ROOT / "docs" / "hooks"
README = ROOT / "README.md"
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
CORE_SOURCE = ROOT / "core" / "src"

ENV_VARIABLE = re.compile(r"EDGECV_[A-Z_]+")
# A Markdown heading (## ...) that talks about what the hook returns.
RETURN_HEADING = re.compile(r"^#{2,6}\s+.*\breturn", re.IGNORECASE | re.MULTILINE)


def hook_names() -> list[str]:
    """Names of the functions in ``edgecv.hookspecs`` marked with ``@hookspec``."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return sorted(name for name, value in vars(hookspecs).items() if hasattr(value, marker))


def hook_pages() -> list[str]:
    return sorted(page.stem for page in HOOK_DOCS.glob("*.md"))


def command_names() -> list[str]:
    return sorted(cli.list_commands(click.Context(cli)))


def environment_variables() -> list[str]:
    found: set[str] = set()
    for source in CORE_SOURCE.rglob("*.py"):
        found.update(ENV_VARIABLE.findall(source.read_text(encoding="utf-8")))
    return sorted(found)


def test_there_is_something_to_check() -> None:
    # Guards the parametrized tests below against silently checking nothing.
    assert hook_names(), "no hookspecs found in edgecv.hookspecs"
    assert command_names(), "no commands registered on edgecv.cli.cli"
    assert environment_variables(), f"no EDGECV_* variables found under {CORE_SOURCE}"


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_has_a_page(hook: str) -> None:
    page = HOOK_DOCS / f"{hook}.md"
    assert page.is_file(), f"hookspec {hook} has no documentation page: write {page.relative_to(ROOT)}"
    text = page.read_text(encoding="utf-8")
    assert hook in text.splitlines()[0], f"{page.relative_to(ROOT)} should start with a title naming {hook}"
    assert RETURN_HEADING.search(text), (
        f"{page.relative_to(ROOT)} has no section about what {hook} returns (e.g. '## Return value')"
    )


@pytest.mark.parametrize("page", hook_pages())
def test_every_page_has_a_hook(page: str) -> None:
    assert page in hook_names(), (
        f"docs/hooks/{page}.md documents a hook that edgecv.hookspecs no longer has: "
        "remove or rename the page"
    )


@pytest.mark.parametrize("command", command_names())
def test_every_command_is_in_the_readme(command: str) -> None:
    if not README.is_file():
        pytest.fail(f"{README.relative_to(ROOT)} does not exist; it should show `edgecv {command}`")
    text = README.read_text(encoding="utf-8")
    assert re.search(rf"\bedgecv {re.escape(command)}\b", text), (
        f"`edgecv {command}` is not mentioned in README.md"
    )


@pytest.mark.parametrize("variable", environment_variables())
def test_every_environment_variable_is_documented(variable: str) -> None:
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    assert re.search(rf"\b{variable}\b", text), (
        f"{variable} is read in core/src but not documented in docs/plugins.md"
    )

"""``edgecv backends``: installed plugins, their backends and export formats, and whether each can run."""

from __future__ import annotations

import json
from typing import Any

import click


@click.command("backends")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def backends_command(as_json: bool) -> None:
    """List installed plugins and backends, available or not and why."""
    from edgecv import plugins

    report = backends_report()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for info in report["backends"]:
        status = "available" if info["available"] else f"unavailable: {info['reason']}"
        hint = f" ({info['hint']})" if info["hint"] and not info["available"] else ""
        description = f"\n{'':<12} {info['description']}" if info["description"] else ""
        click.echo(
            f"{info['name']:<12} {status}{hint}{description}\n"
            f"{'':<12} formats {', '.join(info['formats'])}; priority {info['priority']}; "
            f"plugin {info['plugin']} {info['version']}"
        )
    if report["exporters"]:
        formats = ", ".join(f"{e['format']} ({e['plugin']})" for e in report["exporters"])
        click.echo(f"{'export to':<12} {formats}")
    for record in plugins.plugin_records():
        if not record.ok:
            click.echo(
                f"broken plugin {record.name} ({record.distribution} {record.version}): {record.error}"
            )
        for conflict in record.conflicts:
            click.echo(
                f"refused from plugin {record.name} ({record.distribution} {record.version}): {conflict}"
            )
    if not report["backends"]:
        from edgecv.install_hints import pip_hint

        click.echo(
            f"No backends installed. Install one: {pip_hint('edgecv-onnx')} "
            "(ONNX Runtime on the CPU; `edgecv doctor` says what suits this device)"
        )


def backends_report() -> dict[str, Any]:
    from edgecv import plugins

    every = plugins.plugin_records()
    records: dict[str, plugins.PluginRecord] = {}
    for each in every:  # a distribution refused for reusing an entry-point name comes later
        records.setdefault(each.name, each)
    backends = []
    for info in sorted(plugins.backends(), key=lambda b: -b.priority):
        status = info.availability()
        record = records.get(info.plugin)
        backends.append(
            {
                "name": info.name,
                "plugin": info.plugin,
                "distribution": record.distribution if record else None,
                "version": record.version if record else None,
                "formats": list(info.formats),
                "priority": info.priority,
                "available": status.available,
                "reason": status.reason,
                "hint": status.hint or (info.install_hint if not status.available else ""),
                "description": info.description,
            }
        )
    plugin_list = [
        {
            "name": r.name,
            "distribution": r.distribution,
            "version": r.version,
            "module": r.module,
            "ok": r.ok,
            "error": r.error,
            "backends": list(r.backends),
            "exporters": list(r.exporters),
            "conflicts": list(r.conflicts),
        }
        for r in every
    ]
    exporters = [
        {"format": e.format, "plugin": e.plugin, "description": e.description} for e in plugins.exporters()
    ]
    return {"plugins": plugin_list, "backends": backends, "exporters": exporters}

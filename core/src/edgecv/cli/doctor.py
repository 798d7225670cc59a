"""``edgecv doctor``: this device, its accelerators, runtimes and backends, and what to install."""

from __future__ import annotations

import json
import os
import platform
import sys

import click


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def doctor_command(as_json: bool) -> None:
    """Describe this device and what edgecv can run on it."""
    from edgecv import hardware
    from edgecv.cli.backends import backends_report

    found = hardware.accelerators()
    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "board": hardware.board_model() or None,
        "cpu": hardware.cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_features": hardware.cpu_flags(),
        "runtimes": hardware.runtimes(),
        "accelerators": [{"kind": a.kind, "detail": a.detail, "install": a.install} for a in found],
        "backends": backends_report()["backends"],
        "recommendation": hardware.recommendation(found),
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"python        {report['python']} on {report['platform']}")
    click.echo(f"board         {report['board'] or 'n/a (no device-tree model)'}")
    features = ", ".join(report["cpu_features"]) or "none of note"
    click.echo(f"cpu           {report['cpu']} x{report['cpu_count']}; features: {features}")
    runtimes = ", ".join(f"{k} {v}" for k, v in report["runtimes"].items()) or "none"
    click.echo(f"runtimes      {runtimes}")
    accels = (
        "; ".join(f"{a.kind} ({a.detail})" for a in found) or "none found (no Jetson, GPU, Hailo or Coral)"
    )
    click.echo(f"accelerators  {accels}")
    for info in report["backends"]:
        state = "available" if info["available"] else f"unavailable: {info['reason']}"
        click.echo(f"backend       {info['name']}: {state}")
    click.echo(f"install       {report['recommendation']}")

"""``edgecv doctor``: this device, its accelerators, runtimes and backends, and what to install."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from edgecv.hardware import Accelerator


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def doctor_command(as_json: bool) -> None:
    """Describe this device and what edgecv can run on it."""
    from edgecv import hardware
    from edgecv.cli.backends import backends_report
    from edgecv.install_hints import pip_hint

    found = hardware.accelerators()
    advice = hardware.advice(found)
    if advice.missing:
        recommendation = f"{pip_hint(*advice.missing)} ({advice.why})"
    else:  # never suggest installing what is there (issue 13)
        recommendation = f"nothing to install: {', '.join(advice.packages)} installed ({advice.why})"
    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "board": hardware.board_model() or None,
        "cpu": hardware.cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_features": hardware.cpu_flags(),
        "runtimes": hardware.runtimes(),
        "accelerators": [_accelerator(a) for a in found],
        "backends": backends_report()["backends"],
        "to_install": list(advice.missing),
        "recommendation": recommendation,
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
        if info["available"]:
            state = "available"
        else:
            state = f"unavailable: {info['reason']}" + (f" ({info['hint']})" if info["hint"] else "")
        click.echo(f"backend       {info['name']}: {state}")
    click.echo(f"install       {recommendation}")


def _accelerator(accelerator: Accelerator) -> dict[str, str | None]:
    """An accelerator for the JSON report; ``install`` is what it still needs (null: nothing)."""
    from edgecv.hardware import installed
    from edgecv.install_hints import pip_hint

    missing = [p for p in accelerator.packages if not installed(p)]
    return {
        "kind": accelerator.kind,
        "detail": accelerator.detail,
        "install": f"{pip_hint(*missing)} ({accelerator.note})" if missing else None,
        "note": accelerator.note,
    }

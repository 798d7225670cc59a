"""``edgecv doctor``: this device, its accelerators, runtimes and backends, and what to install.

A backend with ``describe`` (an accelerator's) also describes its attached devices: firmware,
runtime version, temperature. A describe that fails or hangs gives that backend ``{"error": ...}``
and the rest of the report stands."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgecv.backends import Backend
    from edgecv.hardware import Accelerator
    from edgecv.sensors import CommandRunner


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def doctor_command(as_json: bool) -> None:
    """Describe this device and what edgecv can run on it."""
    report = doctor_report()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for line in doctor_lines(report):
        click.echo(line)


def doctor_report(root: str | Path = "/", run: CommandRunner | None = None) -> dict[str, Any]:
    """What ``edgecv doctor --json`` prints; ``root`` and ``run`` let tests describe a fake device."""
    from edgecv import hardware, plugins
    from edgecv.cli.backends import backends_report
    from edgecv.install_hints import pip_hint
    from edgecv.sensors import run_command

    found = hardware.accelerators()
    advice = hardware.advice(found)
    if advice.missing:
        recommendation = f"{pip_hint(*advice.missing)} ({advice.why})"
    else:  # never suggest installing what is there (issue 13)
        recommendation = f"nothing to install: {', '.join(advice.packages)} installed ({advice.why})"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "board": hardware.board_model(root) or None,
        "cpu": hardware.cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_features": hardware.cpu_flags(),
        "runtimes": hardware.runtimes(),
        "accelerators": [_accelerator(a) for a in found],
        "nvidia": hardware.nvidia_report(root, run or run_command),
        "backends": _with_devices(backends_report()["backends"], plugins.backends()),
        "to_install": list(advice.missing),
        "recommendation": recommendation,
    }


def doctor_lines(report: dict[str, Any]) -> list[str]:
    """The text report, one line per fact."""
    from edgecv.devices import device_summary
    from edgecv.hardware import jetson_summary, nvidia_summary

    features = ", ".join(report["cpu_features"]) or "none of note"
    runtimes = ", ".join(f"{k} {v}" for k, v in report["runtimes"].items()) or "none"
    accels = (
        "; ".join(f"{a['kind']} ({a['detail']})" for a in report["accelerators"])
        or "none found (no Jetson, GPU, Hailo or Coral)"
    )
    lines = [
        f"python        {report['python']} on {report['platform']}",
        f"board         {report['board'] or 'n/a (no device-tree model)'}",
        f"cpu           {report['cpu']} x{report['cpu_count']}; features: {features}",
        f"runtimes      {runtimes}",
        f"accelerators  {accels}",
        f"nvidia        {nvidia_summary(report['nvidia']) or 'none (no NVIDIA GPU, CUDA or TensorRT found)'}",
    ]
    jetson = jetson_summary(report["nvidia"]["jetson"])
    if jetson:
        lines.append(f"jetson        {jetson}")
    for info in report["backends"]:
        if info["available"]:
            state = "available"
        else:
            state = f"unavailable: {info['reason']}" + (f" ({info['hint']})" if info["hint"] else "")
        lines.append(f"backend       {info['name']}: {state}")
    for info in report["backends"]:
        if info.get("devices") is not None:
            lines.append(f"device        {info['name']}: {device_summary(info['devices'])}")
    lines.append(f"install       {report['recommendation']}")
    return lines


def _with_devices(records: list[dict[str, Any]], backends: Sequence[Backend]) -> list[dict[str, Any]]:
    """Each backend's record with ``devices``: what its ``describe`` says, when it has one and is
    available (``None`` otherwise)."""
    by_name = {backend.name: backend for backend in backends}
    for record in records:
        backend = by_name.get(record["name"])
        record["devices"] = backend.devices() if backend is not None and record["available"] else None
    return records


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

"""The device a benchmark ran on, from ``edgecv.hardware`` (files the kernel exposes, and the two
bounded NVIDIA queries: ``nvidia-smi``, ``nvpmodel -q``)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

from edgecv import __version__, hardware
from edgecv.sensors import CommandRunner, run_command

_ONNXRUNTIME_BUILDS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: a busy machine makes every number slower."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def usable_cores() -> int | None:
    """CPUs this process may run on (container and ``taskset`` limits included)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def describe_device(root: str | Path = "/", run: CommandRunner = run_command) -> dict[str, Any]:
    """The device record of a bench report (``root``, ``run``: a fake device for tests)."""
    runtimes = hardware.runtimes()
    onnxruntime = next((runtimes[name] for name in _ONNXRUNTIME_BUILDS if name in runtimes), None)
    return {
        "cpu": hardware.cpu_name(root),
        "cores": os.cpu_count(),
        "cores_usable": usable_cores(),
        "cpu_features": hardware.cpu_flags(root),
        "machine": platform.machine(),
        "board": hardware.board_model(root) or None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "edgecv": __version__,
        "onnxruntime": onnxruntime,
        "runtimes": runtimes,
        "accelerators": [accelerator.kind for accelerator in hardware.accelerators()],
        "nvidia": hardware.nvidia_report(root, run),
    }


def device_line(device: dict[str, Any]) -> str:
    """One line for the text report: the CPU model, cores and ISA extensions first (every speed
    figure depends on them), then the board, runtime and accelerators."""
    cores = device.get("cores")
    usable = device.get("cores_usable")
    core_text = f"{cores} cores" if usable in (None, cores) else f"{usable} of {cores} cores"
    parts = [f"{device.get('cpu')} ({core_text}, {device.get('machine')})"]
    features = device.get("cpu_features")
    if features is not None:  # absent from records written before it was added
        parts.append("ISA " + (" ".join(features) or "without the extensions edgecv lists"))
    if device.get("board"):
        parts.append(str(device["board"]))
    if device.get("onnxruntime"):
        parts.append(f"onnxruntime {device['onnxruntime']}")
    if device.get("accelerators"):
        parts.append("accelerators: " + ", ".join(device["accelerators"]))
    nvidia = device.get("nvidia") or {}  # absent from records written before it was added
    parts += [text for text in (hardware.nvidia_summary(nvidia), _jetson_state(nvidia)) if text]
    return "; ".join(parts)


def _jetson_state(nvidia: dict[str, Any]) -> str | None:
    """The Jetson's L4T release, power mode and clocks (its model is already the board)."""
    jetson = nvidia.get("jetson")
    summary = hardware.jetson_summary(jetson)
    return summary.split("; ", 1)[1] if summary and jetson else None

"""Which TFLite interpreter is installed, and the Edge TPU delegate seam. Imports nothing at module load."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgecv.backend import Availability, BackendError, coral_usb_count, one_line, pip_hint

# (module to import, the distribution that provides it), in order of preference.
RUNTIMES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite.python.interpreter", "tensorflow"),
)
# This plugin is installed when the hint shows: what is missing is the runtime it depends on.
INSTALL_HINT = f"{pip_hint('ai-edge-litert>=1.0')} (LiteRT, the standalone TFLite runtime)"
EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_HINT = (
    "Install the Edge TPU runtime (sudo apt-get install libedgetpu1-std from "
    "https://coral.ai/software/#debian-packages), plug in the Coral USB Accelerator or install the "
    "PCIe driver (gasket-dkms), or run the CPU model (the export without _edgetpu) with --backend tflite."
)


def runtime_spec() -> tuple[str, str] | None:
    """(module, distribution) of the first installed TFLite runtime, without importing it."""
    for module, distribution in RUNTIMES:
        try:
            if importlib.util.find_spec(module.split(".")[0]) is not None:
                return module, distribution
        except (ImportError, ValueError):
            continue
    return None


def interpreter_module() -> Any:
    """The module that has ``Interpreter`` and ``load_delegate``; BackendError when none is installed."""
    errors = []
    for module, _ in RUNTIMES:
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            errors.append(f"{module}: {exc}")
    raise BackendError("No TensorFlow Lite runtime is installed", INSTALL_HINT)


def check_runtime() -> Availability:
    if runtime_spec() is None:
        return Availability(
            False, "no TFLite runtime (ai-edge-litert, tflite-runtime) is installed", INSTALL_HINT
        )
    return Availability(True)


def find_edgetpu_library() -> str | None:
    """The Edge TPU runtime library when the dynamic loader can find it."""
    try:
        ctypes.CDLL(EDGETPU_LIBRARY)
        return EDGETPU_LIBRARY
    except OSError:
        found = ctypes.util.find_library("edgetpu")
        return found


def find_edgetpu_devices(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[str]:
    """Edge TPUs visible to this machine: ``usb:N`` for Coral USB sticks, ``pci:N`` for /dev/apex_N."""
    devices = [f"usb:{index}" for index in range(coral_usb_count(sys_root))]
    devices += [f"pci:{p.name.rsplit('_', 1)[-1]}" for p in sorted(dev_root.glob("apex_*"))]
    return devices


def check_edgetpu() -> Availability:
    """What is missing for the Edge TPU backend (runtime, library, device), and how to install it."""
    if runtime_spec() is None:
        return Availability(False, "no TFLite runtime is installed", INSTALL_HINT)
    if importlib.util.find_spec("pycoral") is None and find_edgetpu_library() is None:
        return Availability(
            False, f"the Edge TPU runtime library {EDGETPU_LIBRARY} is not installed", EDGETPU_HINT
        )
    if not find_edgetpu_devices():
        return Availability(
            False, "no Edge TPU device (Coral USB or PCIe /dev/apex_0) was found", EDGETPU_HINT
        )
    return Availability(True)


def load_edgetpu_delegate(device: str | None) -> Any:
    """The seam that opens the Edge TPU: ``load_delegate('libedgetpu.so.1', {'device': ...})``."""
    module = interpreter_module()
    options: Mapping[str, str] = {"device": device} if device else {}
    library = os.environ.get("EDGECV_EDGETPU_LIBRARY", EDGETPU_LIBRARY)
    where = f" device {device!r}" if device else ""
    try:
        ctypes.CDLL(library)  # a missing library fails here, before LiteRT half-builds a Delegate
    except OSError as exc:
        raise BackendError(
            f"Cannot open the Edge TPU{where}: {library} cannot be loaded", EDGETPU_HINT
        ) from exc
    try:
        return module.load_delegate(library, dict(options))
    except (ValueError, OSError, RuntimeError) as exc:
        raise BackendError(f"Cannot open the Edge TPU{where}: {one_line(exc)}", EDGETPU_HINT) from exc

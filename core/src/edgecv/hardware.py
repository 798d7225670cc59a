"""What this device is (board, CPU features, accelerators, runtimes installed), and what to install.

Read from files the kernel exposes (``/proc``, ``/sys``, ``/dev``); nothing is imported or run
that could be slow or fail, so ``edgecv doctor`` works on any device.
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

# (pip distribution, what it is) for every runtime a plugin may use.
RUNTIMES = (
    ("onnxruntime", "ONNX Runtime (CPU)"),
    ("onnxruntime-gpu", "ONNX Runtime (CUDA/TensorRT)"),
    ("onnxruntime-openvino", "ONNX Runtime (OpenVINO)"),
    ("ncnn", "NCNN"),
    ("ai-edge-litert", "LiteRT (TFLite)"),
    ("tflite-runtime", "TFLite runtime"),
    ("tensorrt", "TensorRT"),
    ("hailort", "HailoRT"),
    ("pycoral", "PyCoral (Edge TPU)"),
    ("opencv-python", "OpenCV"),
    ("opencv-python-headless", "OpenCV (headless)"),
)

CORAL_USB_IDS = {("1a6e", "089a"), ("18d1", "9302")}  # before and after firmware load
_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "f16c", "fma", "neon", "asimd", "asimddp", "fphp")


@attrs.frozen
class Accelerator:
    kind: str
    detail: str
    packages: tuple[str, ...] = ()
    """The pip requirements that run models on it (edgecv's plugins and runtimes); none: no backend yet."""
    note: str = ""
    """Why those packages, and what else it needs."""


@attrs.frozen
class Advice:
    """What runs best on this device (``packages``, and why), and which of them are ``missing``."""

    packages: tuple[str, ...]
    why: str
    missing: tuple[str, ...]


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return ""


def board_model() -> str:
    return read_text("/proc/device-tree/model") or read_text("/sys/firmware/devicetree/base/model")


def cpu_flags() -> list[str]:
    info = read_text("/proc/cpuinfo")
    flags: set[str] = set()
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return [f for f in _CPU_FLAGS if f in flags]


def cpu_name() -> str:
    for line in read_text("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Hardware", "Model"):
            return value.strip()
    return platform.processor() or platform.machine()


def runtimes() -> dict[str, str]:
    found = {}
    for dist, _ in RUNTIMES:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def coral_usb_count(sys_root: Path = Path("/sys")) -> int:
    """Coral USB Edge TPUs plugged in (``sys_root`` lets tests point at a fake sysfs)."""
    count = 0
    for device in sorted(glob.glob(str(sys_root / "bus" / "usb" / "devices" / "*"))):
        ids = (read_text(f"{device}/idVendor"), read_text(f"{device}/idProduct"))
        if ids in CORAL_USB_IDS:
            count += 1
    return count


def coral_usb_present() -> bool:
    return coral_usb_count() > 0


_CORAL = (("edgecv-tflite",), "LiteRT; the Edge TPU also needs libedgetpu (https://coral.ai/software/)")
SUPPORT: dict[str, tuple[tuple[str, ...], str]] = {
    # kind: (the pip requirements that run models on it, why and what else it needs)
    "jetson": (
        ("edgecv-onnx",),
        "ONNX Runtime; for the GPU, NVIDIA's onnxruntime-gpu build for your JetPack",
    ),
    "nvidia-gpu": (
        ("edgecv-onnx", "onnxruntime-gpu"),
        "ONNX Runtime with CUDA and TensorRT; uninstall onnxruntime first, both hold the same module",
    ),
    "raspberry-pi": (("edgecv-ncnn",), "NCNN, the fastest on ARM CPUs"),
    "hailo": ((), "no edgecv backend runs on Hailo yet"),
    "coral-pcie": _CORAL,
    "coral-usb": _CORAL,
}
_ARM = ("aarch64", "arm64", "armv7l")


def accelerator(kind: str, detail: str) -> Accelerator:
    """An accelerator of a ``SUPPORT`` kind, with what it needs installed."""
    packages, note = SUPPORT[kind]
    return Accelerator(kind, detail, packages, note)


def accelerators() -> list[Accelerator]:
    found = []
    model = board_model()
    if os.path.exists("/etc/nv_tegra_release") or "jetson" in model.lower():
        found.append(accelerator("jetson", model or "NVIDIA Jetson"))
    elif os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi"):
        found.append(accelerator("nvidia-gpu", read_text("/proc/driver/nvidia/version")[:80] or "NVIDIA GPU"))
    if "raspberry pi" in model.lower():
        found.append(accelerator("raspberry-pi", model))
    if glob.glob("/dev/hailo*"):
        found.append(accelerator("hailo", ", ".join(glob.glob("/dev/hailo*"))))
    if glob.glob("/dev/apex_*"):
        found.append(accelerator("coral-pcie", ", ".join(glob.glob("/dev/apex_*"))))
    if coral_usb_present():
        found.append(accelerator("coral-usb", "Coral USB Accelerator"))
    return found


def installed(requirement: str) -> bool:
    """Whether the distribution ``requirement`` names is installed (``"onnx[export]>=1"``: onnx)."""
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    try:
        importlib.metadata.version(name.group() if name else requirement)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def advice(
    found: Sequence[Accelerator],
    machine: str | None = None,
    is_installed: Callable[[str], bool] | None = None,
) -> Advice:
    """What runs best here, less what is installed: the first accelerator with a backend, else the CPU."""
    packages, why = next(
        ((a.packages, a.note) for a in found if a.packages),
        (("edgecv-ncnn",), "NCNN, the fastest on ARM CPUs; edgecv-onnx runs too")
        if (machine or platform.machine()).lower() in _ARM
        else (("edgecv-onnx",), "ONNX Runtime on the CPU"),
    )
    check = is_installed or installed
    return Advice(packages, why, tuple(p for p in packages if not check(p)))

"""What this device is: board, CPU features, accelerators, and the runtimes installed.

Read from files the kernel exposes (``/proc``, ``/sys``, ``/dev``); nothing is imported or run
that could be slow or fail, so ``edgecv doctor`` works on any device.
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform
import shutil
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
    install: str


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


def accelerators() -> list[Accelerator]:
    found = []
    model = board_model()
    if os.path.exists("/etc/nv_tegra_release") or "jetson" in model.lower():
        found.append(
            Accelerator(
                "jetson", model or "NVIDIA Jetson", "pip install edgecv-tensorrt (JetPack ships TensorRT)"
            )
        )
    elif os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi"):
        found.append(
            Accelerator(
                "nvidia-gpu",
                read_text("/proc/driver/nvidia/version")[:80] or "NVIDIA GPU",
                "pip install edgecv-onnx onnxruntime-gpu (or edgecv-tensorrt)",
            )
        )
    if "raspberry pi" in model.lower():
        found.append(Accelerator("raspberry-pi", model, "pip install edgecv-ncnn"))
    if glob.glob("/dev/hailo*"):
        found.append(
            Accelerator(
                "hailo", ", ".join(glob.glob("/dev/hailo*")), "pip install edgecv-hailo (needs HailoRT)"
            )
        )
    if glob.glob("/dev/apex_*"):
        found.append(
            Accelerator(
                "coral-pcie",
                ", ".join(glob.glob("/dev/apex_*")),
                "pip install edgecv-tflite (needs libedgetpu)",
            )
        )
    if coral_usb_present():
        found.append(
            Accelerator("coral-usb", "Coral USB Accelerator", "pip install edgecv-tflite (needs libedgetpu)")
        )
    return found


def recommendation(found: list[Accelerator]) -> str:
    if found:
        return found[0].install
    if platform.machine().lower() in ("aarch64", "arm64", "armv7l"):
        return "pip install edgecv-ncnn (fastest on ARM CPUs) or edgecv-onnx"
    return "pip install edgecv-onnx (ONNX Runtime on the CPU)"

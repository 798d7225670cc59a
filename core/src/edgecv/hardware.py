"""What this device is (board, CPU features, accelerators, runtimes installed), and what to install.

Read from files the kernel exposes (``/proc``, ``/sys``, ``/dev``); nothing is imported that could
be slow or fail, so ``edgecv doctor`` works on any device. The NVIDIA stack also asks two commands
(``nvidia-smi``, ``nvpmodel -q``), each bounded in time, and never imports TensorRT or CUDA at
module import. Readers take the filesystem ``root`` and a command ``run``ner so tests use a fake
sysroot folder and fake command answers.
"""

from __future__ import annotations

import glob
import importlib.machinery
import importlib.metadata
import json
import os
import platform
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from edgecv.sensors import CommandRunner, run_command

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
# The ISA extensions that decide which kernels the runtimes use, as the kernel spells them in
# /proc/cpuinfo ("flags" on x86, "Features" on ARM: asimddp is dotprod, fphp/asimdhp half floats).
_CPU_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "neon",
    "asimd",
    "asimddp",
    "i8mm",
    "fphp",
    "asimdhp",
    "bf16",
    "sve",
    "sve2",
)


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


def board_model(root: str | Path = "/") -> str:
    return read_text(str(Path(root, "proc/device-tree/model"))) or read_text(
        str(Path(root, "sys/firmware/devicetree/base/model"))
    )


def is_jetson(root: str | Path = "/") -> bool:
    return Path(root, "etc/nv_tegra_release").exists() or "jetson" in board_model(root).lower()


def cpu_flags(root: str | Path = "/") -> list[str]:
    """The CPU's ISA extensions that matter for inference (``_CPU_FLAGS``), in that order."""
    info = read_text(str(Path(root, "proc/cpuinfo")))
    flags: set[str] = set()
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return [f for f in _CPU_FLAGS if f in flags]


def cpu_name(root: str | Path = "/") -> str:
    for line in read_text(str(Path(root, "proc/cpuinfo"))).splitlines():
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
    "hailo": (
        ("edgecv-hailo",),
        "HailoRT's Python package from apt (hailo-all) on a Raspberry Pi 5, or Hailo's wheel elsewhere",
    ),
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
    if is_jetson():
        found.append(accelerator("jetson", model or "NVIDIA Jetson"))
    elif os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi"):
        found.append(accelerator("nvidia-gpu", read_text("/proc/driver/nvidia/version")[:80] or "NVIDIA GPU"))
    # Add-on accelerators before the board they sit on: a Raspberry Pi with a Hailo or Coral runs
    # the detector there, so ``advice`` (the first with a backend) recommends their package.
    if glob.glob("/dev/hailo*"):
        found.append(accelerator("hailo", ", ".join(glob.glob("/dev/hailo*"))))
    if glob.glob("/dev/apex_*"):
        found.append(accelerator("coral-pcie", ", ".join(glob.glob("/dev/apex_*"))))
    if coral_usb_present():
        found.append(accelerator("coral-usb", "Coral USB Accelerator"))
    if "raspberry pi" in model.lower():
        found.append(accelerator("raspberry-pi", model))
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


# --- NVIDIA: GPU, CUDA, TensorRT; on a Jetson the L4T release, power mode and clocks -------------

NVIDIA_SMI_QUERY = ("nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader")
# pip wheels of TensorRT; JetPack's apt python3-libnvinfer has no dist-info (found by module instead).
TENSORRT_DISTS = ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_lean")
# Jetson integrated GPUs, for when nvidia-smi is absent; in order ("Orin Nano" is an Orin, not a Nano).
_JETSON_COMPUTE = (("orin", "8.7"), ("xavier", "7.2"), ("tx2", "6.2"), ("nano", "5.3"), ("tx1", "5.3"))
_L4T = re.compile(r"^#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)")
_POWER_MODE = re.compile(r"^NV Power Mode:\s*(\S.*?)\s*$", re.MULTILINE)
_VERSION_ASSIGNMENT = re.compile(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_CUDA_VERSION_TXT = re.compile(r"CUDA Version\s+(\d+(?:\.\d+)*)")
# Jetson GPU devfreq nodes: 17000000.ga10b (Orin), 17000000.gv11b (Xavier), 57000000.gpu (Nano) ...
_GPU_DEVFREQ = (".gpu", ".ga10b", ".gv11b", ".gp10b", ".gm20b")


@attrs.frozen
class Gpu:
    name: str
    compute_capability: str | None
    driver: str | None


def _value(text: str) -> str | None:
    text = text.strip()
    return None if not text or "N/A" in text or "Not Supported" in text else text


def nvidia_gpus(run: CommandRunner = run_command) -> list[Gpu]:
    """The GPUs ``nvidia-smi`` lists (none when it is absent, fails or hangs: bounded by ``run``)."""
    gpus = []
    for line in (run(NVIDIA_SMI_QUERY) or "").splitlines():
        fields = [_value(field) for field in line.split(",")]
        if len(fields) == 3 and fields[0]:
            gpus.append(Gpu(fields[0], fields[1], fields[2]))
    return gpus


def cuda_version(root: str | Path = "/") -> str | None:
    """The CUDA toolkit's version, from ``/usr/local/cuda/version.json`` (11.1+) or ``version.txt``."""
    folder = Path(root, "usr/local/cuda")
    try:
        version = json.loads(read_text(str(folder / "version.json")) or "null")["cuda"]["version"]
    except (ValueError, TypeError, KeyError):
        version = None
    if isinstance(version, str) and version:
        return version
    match = _CUDA_VERSION_TXT.search(read_text(str(folder / "version.txt")))
    return match.group(1) if match else None


def tensorrt_version(search_path: Sequence[str] | None = None) -> str | None:
    """TensorRT's version: a pip distribution, else JetPack's module (``search_path``: else sys.path).

    A ``tensorrt`` folder with no ``__init__.py`` (``tensorrt-stubs`` ships only ``__init__.pyi``) is a
    namespace package, not TensorRT. The version is read from the module's source; only when that
    says nothing is TensorRT imported (it loads libnvinfer, so never at module import).
    """
    if search_path is None:
        for dist in TENSORRT_DISTS:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
    spec = importlib.machinery.PathFinder.find_spec(
        "tensorrt", None if search_path is None else list(search_path)
    )
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    match = _VERSION_ASSIGNMENT.search(read_text(spec.origin))
    if match:
        return match.group(1)
    if search_path is not None:
        return None
    try:
        import tensorrt
    except (ImportError, OSError, RuntimeError):
        return None
    version = getattr(tensorrt, "__version__", None)
    return version if isinstance(version, str) else None


def l4t_release(root: str | Path = "/") -> str | None:
    """``# R36 (release), REVISION: 4.0, ...`` in ``/etc/nv_tegra_release``: ``R36.4.0``."""
    match = _L4T.match(read_text(str(Path(root, "etc/nv_tegra_release"))))
    return f"R{match.group(1)}.{match.group(2)}" if match else None


def power_mode(run: CommandRunner = run_command) -> str | None:
    """The ``nvpmodel -q`` mode name (``NV Power Mode: MAXN``), after any ``NVPM WARN`` lines."""
    match = _POWER_MODE.search(run(["nvpmodel", "-q"]) or "")
    return match.group(1) if match else None


def _frequencies(folder: Path, low: str, high: str) -> tuple[int, int] | None:
    try:
        return int(read_text(str(folder / low))), int(read_text(str(folder / high)))
    except ValueError:
        return None


def jetson_clocks(root: str | Path = "/") -> tuple[bool | None, str]:
    """Whether ``jetson_clocks`` is on, and how that was decided (``None``: unknown).

    ``jetson_clocks --show`` needs root; sysfs does not. jetson_clocks pins every clock at the
    maximum the current nvpmodel mode allows, so: on when every CPU's ``scaling_min_freq`` equals
    its ``scaling_max_freq`` (not ``cpuinfo_max_freq``, which a capped power mode never reaches) and
    the GPU's devfreq ``min_freq`` equals its ``max_freq``; off when any is lower.
    """
    pairs: list[tuple[str, tuple[int, int]]] = []
    for cpufreq in sorted(Path(root, "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq")):
        pair = _frequencies(cpufreq, "scaling_min_freq", "scaling_max_freq")
        if pair is not None:
            pairs.append((cpufreq.parent.name, pair))
    for devfreq in sorted(Path(root, "sys/class/devfreq").glob("*")):
        pair = _frequencies(devfreq, "min_freq", "max_freq")
        if devfreq.name.endswith(_GPU_DEVFREQ) and pair is not None:
            pairs.append((f"gpu {devfreq.name}", pair))
    if not pairs:
        return None, "unknown: no readable cpufreq or GPU devfreq limits in sysfs"
    below = [name for name, (low, high) in pairs if low < high]
    checked = f"{len(pairs)} clocks (min == max frequency in sysfs)"
    if below:
        return False, f"off: {', '.join(below[:3])} below maximum; checked {checked}"
    return True, f"on: checked {checked}"


def nvidia_report(
    root: str | Path = "/", run: CommandRunner = run_command, tensorrt_path: Sequence[str] | None = None
) -> dict[str, Any]:
    """The NVIDIA stack for ``edgecv doctor`` and ``edgecv bench`` (``None``: not found here)."""
    gpus = nvidia_gpus(run)
    first = gpus[0] if gpus else None
    jetson: dict[str, Any] | None = None
    compute = first.compute_capability if first else None
    if is_jetson(root):
        model = board_model(root) or "NVIDIA Jetson"
        if compute is None:
            compute = next((cc for key, cc in _JETSON_COMPUTE if key in model.lower()), None)
        clocks, basis = jetson_clocks(root)
        jetson = {
            "model": model,
            "l4t": l4t_release(root),
            "power_mode": power_mode(run),
            "jetson_clocks": clocks,
            "jetson_clocks_basis": basis,
        }
    return {
        "gpu": first.name if first else None,
        "gpu_count": len(gpus),
        "compute_capability": compute,
        "driver": first.driver if first else None,
        "cuda": cuda_version(root),
        "tensorrt": tensorrt_version(tensorrt_path),
        "jetson": jetson,
    }


def nvidia_summary(report: dict[str, Any]) -> str | None:
    """One line of the GPU, CUDA and TensorRT found (``None``: none of them)."""
    parts = []
    if report.get("gpu"):
        details = [f"compute {report['compute_capability']}"] if report.get("compute_capability") else []
        details += [f"driver {report['driver']}"] if report.get("driver") else []
        count = report.get("gpu_count") or 1
        name = f"{report['gpu']} x{count}" if count > 1 else str(report["gpu"])
        parts.append(f"{name} ({', '.join(details)})" if details else name)
    elif report.get("compute_capability"):
        parts.append(f"integrated GPU (compute {report['compute_capability']})")
    parts += [f"CUDA {report['cuda']}"] if report.get("cuda") else []
    parts += [f"TensorRT {report['tensorrt']}"] if report.get("tensorrt") else []
    return "; ".join(parts) or None


def jetson_summary(jetson: dict[str, Any] | None) -> str | None:
    """One line of the Jetson's model, L4T release, power mode and clocks (``None``: not a Jetson)."""
    if not jetson:
        return None
    clocks = {True: "on", False: "off", None: "unknown"}[jetson.get("jetson_clocks")]
    return "; ".join(
        [
            str(jetson["model"]),
            f"L4T {jetson.get('l4t') or 'unknown'}",
            f"power mode {jetson.get('power_mode') or 'unknown'}",
            f"jetson_clocks {clocks}",
        ]
    )

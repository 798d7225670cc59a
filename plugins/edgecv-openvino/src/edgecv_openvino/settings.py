"""The backend's options (``device``, ``precision``, ``threads``, ``cache_dir``, ``hint``), checked
once and turned into the properties ``Core.compile_model`` takes.

- ``precision`` is OpenVINO's ``INFERENCE_PRECISION_HINT`` and defaults to ``f32``: OpenVINO's own
  default on CPUs with bf16 (Intel AMX, AMD Zen 4) is bf16, which moved YOLO boxes by up to 20 px.
- ``cache_dir`` is OpenVINO's ``CACHE_DIR`` (compiled models, so a second load skips compilation).
  By default a GPU, NPU or AUTO load uses ``<edgecv cache dir>/openvino`` (``EDGECV_CACHE_DIR``, else
  ``~/.cache/edgecv``): compiling for those takes seconds. A CPU load has no cache unless one is
  named: compiling yolov8n for the CPU takes a fraction of a second, and a plain ``edgecv predict``
  should not leave a copy of every model it opens on disk. ``cache_dir=false`` turns it off.
- ``hint`` is the ``PERFORMANCE_HINT``: ``latency`` (one frame at a time, edgecv's loop) by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from edgecv.backend import BackendError, ConfigError, cache_dir, check_options, positive_int

KNOWN_OPTIONS = frozenset({"device", "precision", "threads", "cache_dir", "hint"})
PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16", "f16": "f16", "fp16": "f16"}
HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO")
"""OpenVINO's devices made of others: never in ``available_devices``, checked when compiling."""
NAME = "OpenVINO"


@attrs.frozen
class Settings:
    device: str = "CPU"
    precision: str = "f32"
    threads: int | None = None
    cache_dir: Path | None = None
    hint: str = "LATENCY"

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> Settings:
        check_options(options, KNOWN_OPTIONS, NAME)
        device = _device_name(options.get("device", "CPU"))
        return cls(
            device=device,
            precision=_choice(options, "precision", PRECISIONS, "f32"),
            threads=positive_int(options, "threads", NAME),
            cache_dir=_cache_dir(options.get("cache_dir", False if device == "CPU" else None)),
            hint=_choice(options, "hint", HINTS, "latency"),
        )

    def properties(self) -> dict[str, Any]:
        """What ``compile_model`` takes (property names as strings: the same in every OpenVINO)."""
        config: dict[str, Any] = {"PERFORMANCE_HINT": self.hint, "INFERENCE_PRECISION_HINT": self.precision}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.cache_dir is not None:
            config["CACHE_DIR"] = str(self.cache_dir)
        return config


def _device_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{NAME} option device must be a device name, got {value!r}",
            "Pass device=CPU, GPU, NPU or AUTO (-o device=GPU).",
        )
    return value.strip().upper()


def _choice(options: Mapping[str, Any], key: str, choices: Mapping[str, str], default: str) -> str:
    value = options.get(key, default)
    chosen = choices.get(value.lower()) if isinstance(value, str) else None
    if chosen is None:
        known = ", ".join(sorted(set(choices.values()), key=list(choices.values()).index)).lower()
        raise ConfigError(
            f"{NAME} option {key} must be one of {known}, got {value!r}", f"Pass {key}={default}."
        )
    return chosen


def _cache_dir(value: Any) -> Path | None:
    """``None`` (default folder), ``False``/``""`` (off), or a folder; created here, not by OpenVINO."""
    if value is False or value == "":
        return None
    explicit = value is not None
    if explicit and not isinstance(value, (str, Path)):
        raise ConfigError(
            f"{NAME} option cache_dir must be a folder or false, got {value!r}",
            "Pass cache_dir=PATH, or cache_dir=false to compile on every load.",
        )
    folder = Path(value) if explicit else Path(cache_dir()) / "openvino"
    try:
        str(folder).encode("utf-8")
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, UnicodeEncodeError) as exc:
        if not explicit:
            return None  # no cache is slower to load, not wrong: the default must not stop a load
        reason = exc.strerror if isinstance(exc, OSError) else "the name is not UTF-8"
        raise ConfigError(
            f"Cannot use {folder} as the {NAME} cache_dir: {reason}",
            "Pass cache_dir=PATH of a folder you can write to, or cache_dir=false.",
        ) from exc
    return folder


def check_device(device: str, available: Sequence[str]) -> str:
    """``device`` when OpenVINO sees it (``GPU`` matches ``GPU.0``), else one ``BackendError``."""
    kind = device.split(":", 1)[0].split(".", 1)[0]
    if kind in VIRTUAL_DEVICES or device in available or any(d.split(".", 1)[0] == device for d in available):
        return device
    raise BackendError(
        f"{NAME} device {device!r} is not present (OpenVINO sees: {', '.join(available) or 'none'})",
        "Pass one of those, or AUTO; a GPU or NPU needs its driver installed "
        "(Intel GPU: the compute runtime with OpenCL; NPU: the Intel NPU driver).",
    )

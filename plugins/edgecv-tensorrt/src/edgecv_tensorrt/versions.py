"""TensorRT version families: what the builder accepts on 8.6, 10 and 11.

- 8.6 (JetPack 6.0): networks must be created with ``EXPLICIT_BATCH`` for the ONNX parser; weak
  typing, reduced precision through ``BuilderFlag.FP16`` / ``BuilderFlag.INT8``.
- 10.x (JetPack 6.1/6.2, pip): explicit batch is implied; weak typing and the builder flags as 8.6.
- 11.x (pip ``tensorrt-cu12``/``-cu13``): every network is strongly typed; ``BuilderFlag.FP16``,
  ``BuilderFlag.INT8`` and INT8 calibrators are gone. FP16 comes from an FP16 ONNX, INT8 from Q/DQ.

All three read Q/DQ ONNX (explicit quantization) and have the named-tensor runtime API (8.5+).
"""

from __future__ import annotations

import re

import attrs

from edgecv.backend import BackendError

MINIMUM = (8, 6)
"""JetPack 6.0's TensorRT; JetPack 5 (TensorRT 8.5, Python 3.8) cannot run edgecv anyway."""

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@attrs.frozen
class TensorRTVersion:
    text: str
    """As ``tensorrt.__version__`` says it (``10.3.0.30``): engines are tied to this exact string."""
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> TensorRTVersion:
        """``tensorrt.__version__`` -> version, or ``BackendError`` for one edgecv does not build with."""
        match = _VERSION.match(str(text))
        if match is None:
            raise BackendError(
                f"Cannot read the TensorRT version {text!r}",
                "Reinstall TensorRT (JetPack's python3-libnvinfer, or pip install tensorrt-cu12).",
            )
        version = cls(text=str(text), major=int(match[1]), minor=int(match[2]))
        if (version.major, version.minor) < MINIMUM:
            raise BackendError(
                f"TensorRT {text} is older than {MINIMUM[0]}.{MINIMUM[1]}, "
                "the oldest edgecv builds engines with",
                "Use JetPack 6 (TensorRT 8.6 or 10.3) or pip install tensorrt-cu12.",
            )
        return version

    @property
    def strongly_typed(self) -> bool:
        """11+: no precision builder flags; the ONNX's own types decide every layer's precision."""
        return self.major >= 11

    @property
    def explicit_batch_flag(self) -> bool:
        """8.x: the ONNX parser needs a network created with ``EXPLICIT_BATCH`` (implied from 10)."""
        return self.major < 10

    def __str__(self) -> str:
        return self.text

"""Shared by the edgecv-ncnn tests: exports made once per test session, the SOURCES.md reference, the CLI.

Exports need pnnx; CI installs it (``pip install --no-deps pnnx``), so a missing pnnx FAILS these
tests instead of skipping them: a skip would hide that the converter was never exercised.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgecv.testing.reference import asset
from edgecv_ncnn import export, tools

YOLOV8 = "yolov8n_fp32_dequant.onnx"
YOLO11 = "yolo11n_320_fp32_dequant.onnx"
# Raw-output parity with ONNX Runtime, fp32 storage and arithmetic (fp16=False): measured max abs
# diff ~1e-3 on box rows (pixels, 0..640) and ~1e-6 on scores; 1e-2 + 1e-3*|x| leaves margin for
# other CPUs' kernels (winograd/sgemm orders) without hiding a wrong layer.
RAW_ATOL, RAW_RTOL = 1e-2, 1e-3

_exports: dict[tuple[str, str], Path] = {}


def model_path(name: str) -> Path:
    return asset("models", name)


def exported(tmp_path_factory: pytest.TempPathFactory, model: str, precision: str = "fp32") -> Path:
    """``model`` (an asset ONNX file) exported to NCNN once per test session, in pytest's temp dir."""
    key = (model, precision)
    if key not in _exports:
        if tools.find_pnnx() is None:
            pytest.fail(f"pnnx is not installed: {tools.PNNX_INSTALL}")
        folder = tmp_path_factory.mktemp(f"ncnn-{Path(model).stem}-{precision}") / "model"
        _exports[key] = export.export(model_path(model), folder, {"precision": precision})
    return _exports[key]


def expected_from_sources(model_file: str) -> list[tuple[str, float]]:
    """Parse 'person 0.907, 0.901; bus 0.832' from the bus.jpg column of SOURCES.md's check results."""
    for line in asset("SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] == model_file:
            expected = []
            for group in cells[1].split(";"):
                match = re.fullmatch(r"\s*([a-z ]+?) ([0-9., ]+)\s*", group)
                assert match, f"cannot parse {group!r} in SOURCES.md"
                expected += [(match.group(1), float(s)) for s in match.group(2).split(",")]
            return expected
    raise AssertionError(f"{model_file} has no bus.jpg row in SOURCES.md")

"""The ncnn backend against the conformance kit, on the reference model exported to NCNN (fp32)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ncnn_helpers import YOLOV8, exported

from edgecv import plugins
from edgecv.testing import BackendConformance


class TestNcnnConformance(BackendConformance):
    backend = "ncnn"
    # fp16 off (the default) so raw outputs match ONNX Runtime within the kit's 1e-2 + 1e-3*|x|.
    load_options: ClassVar[Mapping[str, Any]] = {"fp16": False}

    def prepare_model(self, reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        assert reference.name == YOLOV8
        return exported(tmp_path_factory, YOLOV8)

    def write_corrupt_model(self, model: Path, directory: Path) -> Path:
        """The exported folder with its .bin cut in half (graph and metadata intact)."""
        target = directory / model.name
        shutil.copytree(model, target)
        weights = target / "model.ncnn.bin"
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
        return target


def test_discovered_through_its_entry_point() -> None:
    record = {r.name: r for r in plugins.plugin_records()}.get("ncnn")
    assert record is not None, "no 'ncnn' entry point in group 'edgecv'"
    assert (record.distribution, record.module, record.backends, record.exporters) == (
        "edgecv-ncnn",
        "edgecv_ncnn.plugin",
        ("ncnn",),
        ("ncnn",),
    ), record
    assert record.ok, record.error

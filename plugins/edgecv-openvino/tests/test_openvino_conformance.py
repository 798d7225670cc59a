"""The OpenVINO backend against the conformance kit: on the reference .onnx read directly, and on
the IR folder ``edgecv export --to openvino`` makes of it (fp32)."""

from __future__ import annotations

from pathlib import Path

import pytest
from openvino_helpers import YOLOV8, exported

from edgecv import plugins
from edgecv.testing import BackendConformance


class TestOpenVinoOnnxConformance(BackendConformance):
    backend = "openvino"


class TestOpenVinoIrConformance(BackendConformance):
    backend = "openvino"

    def prepare_model(self, reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        assert reference.name == YOLOV8
        return exported(tmp_path_factory, YOLOV8)


def test_discovered_through_its_entry_point() -> None:
    record = {r.name: r for r in plugins.plugin_records()}.get("openvino")
    assert record is not None, "no 'openvino' entry point in group 'edgecv'"
    assert (record.distribution, record.module, record.backends, record.exporters) == (
        "edgecv-openvino",
        "edgecv_openvino.plugin",
        ("openvino",),
        ("openvino",),
    ), record
    assert record.ok, record.error

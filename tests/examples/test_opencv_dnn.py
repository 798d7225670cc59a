"""The example third-party backend (examples/edgecv-opencv-dnn) against the conformance kit."""

from __future__ import annotations

from edgecv import plugins
from edgecv.testing import BackendConformance


class TestOpenCVDNN(BackendConformance):
    backend = "opencv-dnn"


def test_discovered_through_its_entry_point() -> None:
    records = {r.name: r for r in plugins.plugin_records()}
    record = records.get("opencv-dnn")
    assert record is not None, f"no 'opencv-dnn' entry point in group 'edgecv' (found: {sorted(records)})"
    assert record.distribution == "edgecv-opencv-dnn", record
    assert record.module == "edgecv_opencv_dnn.plugin", record
    assert record.ok, record.error
    assert record.backends == ("opencv-dnn",), record.backends


def test_auto_still_prefers_onnx() -> None:
    by_name = {b.name: b for b in plugins.backends()}
    assert by_name["opencv-dnn"].priority < by_name["onnx"].priority

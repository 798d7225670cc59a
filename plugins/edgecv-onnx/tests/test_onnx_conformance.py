"""The ONNX Runtime backend against the conformance kit."""

from __future__ import annotations

from edgecv.testing import BackendConformance


class TestOnnxConformance(BackendConformance):
    backend = "onnx"

"""The TensorRT backend against the conformance kit, on the fake TensorRT and CUDA (tests/trt_fakes.py).

The fake engine holds the reference ONNX model and its execution context computes with ONNX
Runtime, so the kit checks everything of the plugin but the GPU kernels: the engine loading and
sidecar check, the named-tensor call order, the buffers, the spec, the decoding of real outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import trt_fakes

from edgecv.testing import BackendConformance
from edgecv_tensorrt.sidecar import read_sidecar, write_engine


class TestTensorRTConformance(BackendConformance):
    backend = "tensorrt"
    # The fake runs the same float32 ONNX model as the onnx backend: boxes agree to float rounding.
    box_tol_px: ClassVar[float] = 1.0
    trt: ClassVar = None

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def fake_tensorrt(cls) -> Iterator[None]:
        with pytest.MonkeyPatch.context() as patch:
            cls.trt = trt_fakes.install_fakes(patch)
            yield

    def prepare_model(self, reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        folder = tmp_path_factory.mktemp("engines")
        return trt_fakes.write_fake_engine(reference, folder / "yolov8n.engine", self.trt)

    def write_corrupt_model(self, model: Path, directory: Path) -> Path:
        """Half the engine, with a sidecar that vouches for those bytes: deserialization refuses it."""
        target = directory / model.name
        write_engine(target, model.read_bytes()[: model.stat().st_size // 2], read_sidecar(model))
        return target

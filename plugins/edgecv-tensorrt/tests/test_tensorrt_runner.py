"""``runtime.EngineRunner`` on the fake TensorRT and CUDA: call order, buffers, shapes, refusals.

The fakes (tests/trt_fakes.py) follow the real APIs: copies and ``execute_async_v3`` run on the
stream at the sync, the execution context asserts the named-tensor call order, and the outputs are
ONNX Runtime's on the same model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import trt_fakes
from onnx import TensorProto, helper

from edgecv.backend import BackendError, ModelError
from edgecv_tensorrt.runtime import EngineRunner, make_logger

REFERENCE = "yolov8n_fp32_dequant.onnx"
FRAME = [
    "copy_to_device",
    "set_input_shape",
    "set_tensor_address",
    "set_tensor_address",
    "execute_async_v3",
    "copy_to_host",
    "synchronize",
]


def tiny_model(path: Path, *, dynamic: bool = False, half: bool = False) -> Path:
    """``y = x * 2`` on an NCHW image tensor (float16 I/O with ``half``); small and fast."""
    kind = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    shape: list[int | str] = [1, 3, "height", "width"] if dynamic else [1, 3, 8, 8]
    graph = helper.make_graph(
        [helper.make_node("Mul", ["images", "two"], ["output0"])],
        "tiny",
        [helper.make_tensor_value_info("images", kind, shape)],
        [helper.make_tensor_value_info("output0", kind, shape)],
        [helper.make_tensor("two", kind, [], [2.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def yolo_runner(models: Path) -> tuple[EngineRunner, trt_fakes.FakeCuda]:
    trt = trt_fakes.fake_tensorrt()
    runner = EngineRunner(
        trt, trt.fake_cuda, trt_fakes.fake_engine_bytes(models / REFERENCE, trt.__version__), name="y.engine"
    )
    return runner, trt.fake_cuda


def test_one_frame_is_h2d_shape_addresses_enqueue_d2h_sync(
    yolo_runner: tuple[EngineRunner, trt_fakes.FakeCuda],
) -> None:
    runner, cuda = yolo_runner
    for _ in range(2):
        runner.execute(np.zeros((1, 3, 640, 640), np.float32))
        assert cuda.frames()[-1][-len(FRAME) :] == FRAME
    assert cuda.frames()[-1] == FRAME  # the second frame: nothing else (no allocation, no shape query)


def test_no_allocation_per_frame(yolo_runner: tuple[EngineRunner, trt_fakes.FakeCuda]) -> None:
    runner, cuda = yolo_runner
    # At load: one device and one pinned buffer per I/O tensor, and one stream.
    assert [c[0] for c in cuda.calls[:6]].count("device_alloc") == 2
    before = cuda.allocations
    assert before == 5
    for _ in range(3):
        runner.execute(np.zeros((1, 3, 640, 640), np.float32))
    assert cuda.allocations == before


def test_outputs_are_onnxruntimes_on_the_same_tensor(
    yolo_runner: tuple[EngineRunner, trt_fakes.FakeCuda], models: Path
) -> None:
    runner, _ = yolo_runner
    tensor = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    expected = ort.InferenceSession(str(models / REFERENCE), providers=["CPUExecutionProvider"]).run(
        None, {"images": tensor}
    )
    (got,) = runner.execute(tensor)
    assert got.shape == (1, 84, 8400) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected[0])
    assert runner.input.shape == (1, 3, 640, 640)
    assert [o.shape for o in runner.output_specs] == [(1, 84, 8400)]


def test_the_fake_runs_enqueued_work_only_at_the_sync(tmp_path: Path) -> None:
    """What makes the call-order test meaningful: a runner reading before the sync gets stale data."""
    trt = trt_fakes.fake_tensorrt()
    cuda = trt.fake_cuda
    device = cuda.device_alloc(16)
    host, view = cuda.host_alloc(16)
    stream = cuda.stream_create()
    cuda.device_bytes(device, 16)[:] = 7
    cuda.copy_to_host(host, device, 16, stream)
    assert not view.any()
    cuda.synchronize(stream)
    assert (view == 7).all()


def test_the_fake_context_refuses_an_execute_without_addresses(tmp_path: Path) -> None:
    trt = trt_fakes.fake_tensorrt()
    model = tiny_model(tmp_path / "tiny.onnx")
    runtime = trt.Runtime(make_logger(trt, []))
    context = runtime.deserialize_cuda_engine(
        trt_fakes.fake_engine_bytes(model, trt.__version__)
    ).create_execution_context()
    assert context.set_input_shape("images", (1, 3, 8, 8))
    with pytest.raises(AssertionError, match="set_tensor_address"):
        context.execute_async_v3(trt.fake_cuda.stream_create())


@pytest.mark.parametrize(
    ("data", "logged"),
    [
        (b"\x00garbage", "Magic tag does not match"),
        (b"EDGECV-FAKE-TRT\n{not json", "Magic tag does not match"),
    ],
)
def test_a_corrupt_engine_is_one_model_error_line(
    data: bytes, logged: str, capfd: pytest.CaptureFixture[str]
) -> None:
    trt = trt_fakes.fake_tensorrt()
    with pytest.raises(ModelError) as caught:
        EngineRunner(trt, trt.fake_cuda, data, name="broken.engine")
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"TensorRT {trt.__version__} cannot deserialize broken.engine: ")
    assert logged in text and "rebuild it on this machine" in text
    assert trt.fake_cuda.allocations == 0
    assert capfd.readouterr().err == ""  # TensorRT's messages go into the error, not onto stderr


def test_an_engine_of_another_tensorrt_version_is_refused(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    trt = trt_fakes.fake_tensorrt("10.3.0.30")
    with pytest.raises(ModelError, match=r"expecting library version 10\.3\.0\.30 got 8\.6\.2\.3"):
        EngineRunner(trt, trt.fake_cuda, trt_fakes.fake_engine_bytes(model, "8.6.2.3"), name="old.engine")


@pytest.mark.parametrize("version", ["8.6.2.3", "10.3.0.30", "11.0.0.10"])
def test_one_code_path_for_every_version_family(version: str, tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    trt = trt_fakes.fake_tensorrt(version)
    runner = EngineRunner(trt, trt.fake_cuda, trt_fakes.fake_engine_bytes(model, version), name="t.engine")
    tensor = np.arange(192, dtype=np.float32).reshape(1, 3, 8, 8)
    for _ in range(2):
        (got,) = runner.execute(tensor)
        np.testing.assert_array_equal(got, tensor * 2)
    assert trt.fake_cuda.frames()[-1] == FRAME


def test_dynamic_engine_allocates_for_the_largest_profile_shape(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "dyn.onnx", dynamic=True)
    trt = trt_fakes.fake_tensorrt()
    profile = {"min": [1, 3, 4, 4], "opt": [1, 3, 8, 8], "max": [1, 3, 16, 16]}
    data = trt_fakes.fake_engine_bytes(model, trt.__version__, profile=profile)
    runner = EngineRunner(trt, trt.fake_cuda, data, name="dyn.engine")
    assert runner.input.shape == (1, 3, None, None)
    device_sizes = [c[1] for c in trt.fake_cuda.calls if c[0] == "device_alloc"]
    assert device_sizes == [3 * 16 * 16 * 4] * 2
    before = trt.fake_cuda.allocations
    for side in (16, 4, 12):
        tensor = np.full((1, 3, side, side), 1.5, np.float32)
        (got,) = runner.execute(tensor)
        assert got.shape == (1, 3, side, side)
        np.testing.assert_array_equal(got, tensor * 2)
    assert trt.fake_cuda.allocations == before
    with pytest.raises(BackendError, match=r"does not fit the engine's \[1, 3, -1, -1\]") as caught:
        runner.execute(np.zeros((1, 3, 32, 32), np.float32))
    assert "\n" not in str(caught.value)


def test_a_static_engine_refuses_another_size(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    trt = trt_fakes.fake_tensorrt()
    runner = EngineRunner(
        trt, trt.fake_cuda, trt_fakes.fake_engine_bytes(model, trt.__version__), name="t.engine"
    )
    with pytest.raises(BackendError, match=r"input shape \[1, 3, 16, 16\] does not fit"):
        runner.execute(np.zeros((1, 3, 16, 16), np.float32))


def test_half_precision_io(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "half.onnx", half=True)
    trt = trt_fakes.fake_tensorrt()
    runner = EngineRunner(
        trt, trt.fake_cuda, trt_fakes.fake_engine_bytes(model, trt.__version__, "fp16"), name="h.engine"
    )
    assert runner.input.dtype == "float16" and runner.output_specs[0].dtype == "float16"
    (got,) = runner.execute(np.full((1, 3, 8, 8), 0.25, np.float32))  # cast into the float16 buffer
    assert got.dtype == np.float16
    assert (got == 0.5).all()


def test_close_frees_every_buffer_and_the_stream_once(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    trt = trt_fakes.fake_tensorrt()
    cuda = trt.fake_cuda
    runner = EngineRunner(trt, cuda, trt_fakes.fake_engine_bytes(model, trt.__version__), name="t.engine")
    runner.execute(np.zeros((1, 3, 8, 8), np.float32))
    assert cuda.live() == 5
    runner.close()
    assert cuda.live() == 0
    runner.close()  # harmless
    with pytest.raises(BackendError, match="is closed"):
        runner.execute(np.zeros((1, 3, 8, 8), np.float32))

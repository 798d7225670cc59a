"""The fake HailoRT (``hailo_fakes``) pinned against ONNX Runtime and HailoRT's documented behaviour.

Every other Hailo test trusts the fake, so this module checks it on its own: NMS-by-class results
against ONNX Runtime + edgecv's NMS (an implementation independent of the fake's OpenCV one), the
raw buffer layout, quantization within one step, async order and the queue limit, the failures
HailoRT raises, and the device queries.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from hailo_fakes import (
    fake_hailo,
    install_fake,
    letterboxed_rgb,
    pack_nms,
    unpack_nms,
    write_fake_hef,
    write_tiny_onnx,
)

from edgecv.decoders.nms import nms
from edgecv.preprocess import letterbox

REFERENCE = "yolov8n_fp32_dequant.onnx"


# --- helpers -----------------------------------------------------------------------------------------


def onnx_outputs(onnx: Path, frame: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
    """ONNX Runtime on ``frame`` (RGB uint8 HWC) prepared here, independently of the fake."""
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    tensor = np.ascontiguousarray(frame.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    return [np.asarray(out) for out in session.run(None, {session.get_inputs()[0].name: tensor})]


def reference_nms(
    prediction: npt.NDArray[np.float32], size: tuple[int, int], score: float, iou: float, max_boxes: int
) -> list[npt.NDArray[np.float32]]:
    """Per-class NMS with edgecv's own greedy NMS: rows [y_min, x_min, y_max, x_max, score] normalized."""
    rows = prediction[0]
    cx, cy, w, h = rows[:4]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    result = []
    for scores in rows[4:]:
        candidates = np.flatnonzero(scores >= score)
        kept = candidates[nms(xyxy[candidates], scores[candidates], iou, max_det=max_boxes)]
        x1, y1, x2, y2 = xyxy[kept].T
        result.append(
            np.stack([y1 / size[0], x1 / size[1], y2 / size[0], x2 / size[1], scores[kept]], axis=1)
        )
    return result


class Opened:
    """A fake module with a HEF configured as edgecv's runtime does (ROUND_ROBIN, uint8 input)."""

    def __init__(self, hailo: Any, hef: Path, *, float_outputs: bool = False, **nms: Any) -> None:
        self.hailo = hailo
        params = hailo.VDevice.create_params()
        params.scheduling_algorithm = hailo.HailoSchedulingAlgorithm.ROUND_ROBIN
        self.vdevice = hailo.VDevice(params)
        self.model = self.vdevice.create_infer_model(str(hef))
        self.model.input().set_format_type(hailo.FormatType.UINT8)
        for stream in self.model.outputs:
            if stream.is_nms or float_outputs:
                stream.set_format_type(hailo.FormatType.FLOAT32)
            if stream.is_nms:
                for name, value in nms.items():
                    getattr(stream, f"set_nms_{name}")(value)
        self.configured = self.model.configure()

    def bind(self, frame: npt.NDArray[np.uint8]) -> tuple[Any, list[npt.NDArray[Any]]]:
        buffers = [np.empty(s.shape, DTYPES[s.format.type.name]) for s in self.model.outputs]
        bindings = self.configured.create_bindings(
            output_buffers=dict(zip(self.model.output_names, buffers, strict=True))
        )
        bindings.input().set_buffer(frame)
        return bindings, buffers

    def close(self) -> None:
        self.configured.shutdown()
        self.vdevice.release()


DTYPES = {"UINT8": np.uint8, "UINT16": np.uint16, "FLOAT32": np.float32}


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """The tiny detector with both outputs (flat YOLOv8 layout and an NCHW feature map)."""
    return write_tiny_onnx(tmp_path / "tiny.onnx", size=32, classes=2, feature_map=True)


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    """The tiny detector with only its YOLOv8-layout output (an NMS HEF takes one output)."""
    return write_tiny_onnx(tmp_path / "plain.onnx", size=32, classes=2)


def open_vdevice(hailo: Any) -> Any:
    params = hailo.VDevice.create_params()
    params.scheduling_algorithm = hailo.HailoSchedulingAlgorithm.ROUND_ROBIN
    return hailo.VDevice(params)


def tiny_frame(seed: int, size: int = 32) -> npt.NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


# --- NMS by class --------------------------------------------------------------------------------------


def test_nms_by_class_matches_onnxruntime_and_edgecv_nms_on_bus(
    models: Path, bus_path: Path, tmp_path: Path
) -> None:
    onnx = models / REFERENCE
    hef = write_fake_hef(tmp_path / "y8.hef", onnx, score_threshold=0.25, iou_threshold=0.45)
    hailo = fake_hailo()
    opened = Opened(hailo, hef)
    frame = letterboxed_rgb(bus_path, (640, 640))
    bindings, (buffer,) = opened.bind(frame)
    opened.configured.run([bindings], 10000)
    per_class = bindings.output().get_buffer()

    assert opened.model.output().shape == [80 * (1 + 5 * 100)]
    assert len(per_class) == 80
    expected = reference_nms(onnx_outputs(onnx, frame)[0], (640, 640), 0.25, 0.45, 100)
    for got, want in zip(per_class, expected, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)
    # bus.jpg as SOURCES.md records it: person 0.907 0.901 0.900 0.374, bus 0.832
    np.testing.assert_allclose(per_class[0][:, 4], [0.907, 0.901, 0.900, 0.374], atol=1e-3)
    np.testing.assert_allclose(per_class[5][:, 4], [0.832], atol=1e-3)
    # The bound buffer holds HailoRT's layout: classes back to back, count then rows, tail zeroed.
    assert buffer[0] == 4 and buffer[1 + 5 * 4] == 0
    np.testing.assert_array_equal(buffer[1 : 1 + 20].reshape(4, 5), per_class[0])
    used = 80 + 5 * 5
    assert not buffer[used:].any()
    # get_buffer gives views of the buffer; an empty class is float64 (0, 5), as HailoRT makes it.
    assert np.shares_memory(per_class[0], buffer)
    assert per_class[1].shape == (0, 5) and per_class[1].dtype == np.float64
    opened.close()
    assert hailo.fake.closed


def test_nms_layout_round_trips_and_old_releases_wrap_it_per_frame(plain: Path, tmp_path: Path) -> None:
    rows = [
        np.array([[0.1, 0.2, 0.3, 0.4, 0.9], [0.5, 0.5, 0.6, 0.6, 0.8]], np.float32),
        np.zeros((0, 5), np.float32),
    ]
    flat = pack_nms([*rows, rows[0][:1]], max_boxes=3)
    assert flat.shape == (3 * (1 + 5 * 3),)
    assert flat[0] == 2 and flat[11] == 0 and flat[12] == 1
    unpacked = unpack_nms(flat, 3)
    np.testing.assert_array_equal(unpacked[0], rows[0])
    np.testing.assert_array_equal(unpacked[2], rows[0][:1])

    hef = write_fake_hef(tmp_path / "tiny.hef", plain)
    for version, wrapped in (("4.18.0", True), ("4.21.0", False)):
        hailo = fake_hailo(version)
        opened = Opened(hailo, hef)
        bindings, _ = opened.bind(tiny_frame(0))
        opened.configured.run([bindings], 5000)
        got = bindings.output().get_buffer()
        per_class = got[0] if wrapped else got
        assert len(got) == (1 if wrapped else 2) and len(per_class) == 2
        assert per_class[0].shape[1] == 5
        order = "HAILO_NMS" if wrapped else "HAILO_NMS_BY_CLASS"
        assert opened.model.output().format.order.name == order
        tf = bindings.output().get_buffer(tf_format=True)
        assert tf.shape == (2, 5, 100)
        np.testing.assert_array_equal(tf[0, :, : len(per_class[0])].T, per_class[0])
        opened.close()


def test_nms_settings_are_honoured(plain: Path, tmp_path: Path) -> None:
    onnx = plain
    hef = write_fake_hef(
        tmp_path / "tiny.hef", onnx, score_threshold=0.2, iou_threshold=0.7, max_boxes_per_class=50
    )
    frame = tiny_frame(3)
    prediction = onnx_outputs(onnx, frame)[0]
    cases: list[tuple[dict[str, Any], tuple[float, float, int]]] = [
        ({}, (0.2, 0.7, 50)),
        ({"score_threshold": 0.9, "iou_threshold": 0.1, "max_proposals_per_class": 7}, (0.9, 0.1, 7)),
    ]
    for settings, (score, iou, max_boxes) in cases:
        hailo = fake_hailo()
        opened = Opened(hailo, hef, **settings)
        assert opened.model.output().shape == [2 * (1 + 5 * max_boxes)]
        bindings, _ = opened.bind(frame)
        opened.configured.run([bindings], 5000)
        got = bindings.output().get_buffer()
        want = reference_nms(prediction, (32, 32), score, iou, max_boxes)
        assert [len(g) for g in got] == [len(w) for w in want]
        assert len(got[0]) > 0
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-5)
        opened.close()


def test_nms_setters_on_a_raw_output_make_configure_fail(tiny: Path, tmp_path: Path) -> None:
    hef = write_fake_hef(tmp_path / "raw.hef", tiny, nms=False)
    hailo = fake_hailo()
    with open_vdevice(hailo) as vdevice:
        model = vdevice.create_infer_model(str(hef))
        model.output(model.output_names[0]).set_nms_score_threshold(0.5)  # accepted here...
        with pytest.raises(hailo.pyhailort.pyhailort.HailoRTInvalidOperationException):
            model.configure()  # ...refused here, as HailoRT documents


# --- raw outputs and quantization ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_raw_outputs_quantize_within_one_step_in_hailort_layout(
    dtype: str, tiny: Path, tmp_path: Path
) -> None:
    frame = tiny_frame(1)
    hef = write_fake_hef(tmp_path / "raw.hef", tiny, nms=False, output_dtype=dtype, calibration=frame)
    hailo = fake_hailo()
    opened = Opened(hailo, hef)
    flat, features = opened.model.outputs
    assert flat.shape == [1, 6, 1024] and features.shape == [32, 32, 6]  # NCHW became NHWC
    assert flat.format.type.name == dtype.upper() and not flat.is_nms
    bindings, buffers = opened.bind(frame)
    opened.configured.run([bindings], 5000)
    want = onnx_outputs(tiny, frame)
    for stream, buffer, reference in zip(
        opened.model.outputs, buffers, (want[0][0][None], want[1][0].transpose(1, 2, 0)), strict=True
    ):
        quant = stream.quant_infos[0]
        assert buffer.dtype == np.dtype(dtype)
        real = (buffer.astype(np.float32) - quant.qp_zp) * quant.qp_scale
        assert np.abs(real - reference).max() <= quant.qp_scale / 2 + 1e-6
        assert quant.qp_scale < (reference.max() - min(reference.min(), 0)) / (np.iinfo(dtype).max - 1)
    opened.close()

    # FLOAT32 asked: HailoRT dequantizes the same device values on the host.
    floating = Opened(fake_hailo(), hef, float_outputs=True)
    bindings, float_buffers = floating.bind(frame)
    floating.configured.run([bindings], 5000)
    for stream, quantized, dequantized in zip(floating.model.outputs, buffers, float_buffers, strict=True):
        quant = stream.quant_infos[0]
        assert dequantized.dtype == np.float32
        np.testing.assert_allclose(
            dequantized, (quantized.astype(np.float32) - quant.qp_zp) * quant.qp_scale, rtol=1e-6
        )
    floating.close()


def test_raw_reference_model_round_trips_on_bus(models: Path, bus_path: Path, tmp_path: Path) -> None:
    onnx = models / REFERENCE
    frame = letterboxed_rgb(bus_path, (640, 640))
    hef = write_fake_hef(tmp_path / "raw.hef", onnx, nms=False, output_dtype="uint16", calibration=frame)
    opened = Opened(fake_hailo(), hef)
    assert opened.model.output().shape == [1, 84, 8400]
    bindings, (buffer,) = opened.bind(frame)
    opened.configured.run([bindings], 10000)
    quant = opened.model.output().quant_infos[0]
    real = (buffer.astype(np.float32) - quant.qp_zp) * quant.qp_scale
    assert np.abs(real - onnx_outputs(onnx, frame)[0]).max() <= quant.qp_scale / 2 + 1e-4
    opened.close()


# --- async: order, the queue, batches ------------------------------------------------------------------


def test_async_jobs_complete_in_order_on_another_thread_within_the_queue(tiny: Path, tmp_path: Path) -> None:
    hef = write_fake_hef(tmp_path / "raw.hef", tiny, nms=False, output_dtype="uint16")
    hailo = fake_hailo(queue_size=3)
    opened = Opened(hailo, hef, float_outputs=True)
    configured = opened.configured
    assert configured.get_async_queue_size() == 3
    completed: list[tuple[int, Any, str]] = []
    frames = [tiny_frame(seed) for seed in range(3)]
    bound = [opened.bind(frame) for frame in frames]

    hailo.fake.gate.clear()  # the device holds every job
    jobs = []
    for index, (bindings, _) in enumerate(bound):
        configured.wait_for_async_ready(1000, 1)
        jobs.append(
            configured.run_async(
                [bindings],
                lambda completion_info, index=index: completed.append(
                    (index, completion_info.exception, threading.current_thread().name)
                ),
            )
        )
    assert hailo.fake.in_flight == 3 and not completed
    with pytest.raises(hailo.pyhailort.pyhailort.HailoRTTimeout):
        configured.wait_for_async_ready(50, 1)
    extra, _ = opened.bind(tiny_frame(9))
    with pytest.raises(hailo.HailoRTException, match="HAILO_QUEUE_IS_FULL"):
        configured.run_async([extra])
    with pytest.raises(hailo.pyhailort.pyhailort.HailoRTTimeout):
        jobs[0].wait(50)

    hailo.fake.gate.set()
    for job in jobs:
        job.wait(5000)
    assert [index for index, _, _ in completed] == [0, 1, 2]
    assert all(exc is None for _, exc, _ in completed)
    assert all(name != threading.current_thread().name for _, _, name in completed)
    assert hailo.fake.max_in_flight == 3
    for frame, (_, buffers) in zip(frames, bound, strict=True):  # each frame got its own outputs
        np.testing.assert_allclose(buffers[0], onnx_outputs(tiny, frame)[0][0][None], atol=0.02)
    configured.wait_for_async_ready(100, 3)
    opened.close()
    assert hailo.fake.closed


def test_inputs_are_read_when_the_device_runs_the_job(tiny: Path, tmp_path: Path) -> None:
    """As with DMA: a frame overwritten while queued is inferred with what it holds then."""
    hef = write_fake_hef(tmp_path / "raw.hef", tiny, nms=False, output_dtype="uint16")
    hailo = fake_hailo()
    opened = Opened(hailo, hef, float_outputs=True)
    frame = tiny_frame(4)
    bindings, (flat, _) = opened.bind(frame)
    hailo.fake.gate.clear()
    job = opened.configured.run_async([bindings])
    later = tiny_frame(5)
    frame[...] = later
    hailo.fake.gate.set()
    job.wait(5000)
    np.testing.assert_allclose(flat, onnx_outputs(tiny, later)[0][0][None], atol=0.02)
    opened.close()


def test_batches_run_as_device_bursts(tiny: Path, tmp_path: Path) -> None:
    hef = write_fake_hef(tmp_path / "raw.hef", tiny, nms=False, batch_size=2)
    hailo = fake_hailo(queue_size=2)
    opened = Opened(hailo, hef)
    assert opened.configured.get_async_queue_size() == 2
    hailo.fake.gate.clear()
    jobs = [opened.configured.run_async([opened.bind(tiny_frame(i))[0]]) for i in range(2)]
    hailo.fake.gate.set()
    for job in jobs:
        job.wait(5000)
    assert hailo.fake.bursts == [2]  # the HEF's batch: one burst of two frames
    opened.close()

    hailo = fake_hailo(queue_size=2)
    params = hailo.VDevice.create_params()
    params.scheduling_algorithm = hailo.HailoSchedulingAlgorithm.ROUND_ROBIN
    vdevice = hailo.VDevice(params)
    model = vdevice.create_infer_model(str(hef))
    model.set_batch_size(4)
    configured = model.configure()
    assert configured.get_async_queue_size() == 4  # room for a whole batch
    bindings = []
    for index in range(4):
        b = configured.create_bindings(
            output_buffers={s.name: np.empty(s.shape, np.uint8) for s in model.outputs}
        )
        b.input().set_buffer(tiny_frame(index))
        bindings.append(b)
    hailo.fake.gate.clear()
    job = configured.run_async(bindings)  # one job of four frames (a batch)
    assert hailo.fake.in_flight == 4
    hailo.fake.gate.set()
    job.wait(5000)
    assert hailo.fake.bursts == [4]
    configured.shutdown()
    vdevice.release()


def test_failed_stalled_and_aborted_jobs(tiny: Path, tmp_path: Path) -> None:
    hef = write_fake_hef(tmp_path / "raw.hef", tiny, nms=False)
    hailo = fake_hailo()
    errors = hailo.pyhailort.pyhailort
    opened = Opened(hailo, hef)
    infos: list[Any] = []

    hailo.fake.fail_next(1, "HAILO_STREAM_ABORT")
    job = opened.configured.run_async(
        [opened.bind(tiny_frame(0))[0]], lambda completion_info: infos.append(completion_info)
    )
    with pytest.raises(errors.HailoRTStreamAborted):
        job.wait(5000)
    assert isinstance(infos[-1].exception, errors.HailoRTStreamAborted)
    hailo.fake.fail_next(1)
    with pytest.raises(
        hailo.HailoRTException, match=r"libhailort failed with error: 8 \(HAILO_INTERNAL_FAILURE\)"
    ):
        opened.configured.run([opened.bind(tiny_frame(1))[0]], 5000)
    opened.configured.run([opened.bind(tiny_frame(2))[0]], 5000)  # the next frame runs again

    hailo.fake.stall(1)
    stalled = opened.configured.run_async(
        [opened.bind(tiny_frame(3))[0]], lambda completion_info: infos.append(completion_info)
    )
    with pytest.raises(errors.HailoRTTimeout):
        stalled.wait(100)
    assert hailo.fake.in_flight == 1
    opened.configured.shutdown()  # aborts what never completed
    assert isinstance(infos[-1].exception, errors.HailoRTStreamAborted)
    assert hailo.fake.in_flight == 0
    opened.vdevice.release()

    hailo = fake_hailo()
    opened = Opened(hailo, hef)
    hailo.fake.gate.clear()
    queued = [opened.configured.run_async([opened.bind(tiny_frame(i))[0]]) for i in range(3)]
    hailo.fake.fail_next(1, pipeline_down=True)
    hailo.fake.gate.set()
    with pytest.raises(hailo.HailoRTException, match="HAILO_INTERNAL_FAILURE"):
        queued[0].wait(5000)
    for job in queued[1:]:
        with pytest.raises(hailo.pyhailort.pyhailort.HailoRTStreamAborted):
            job.wait(5000)
    with pytest.raises(hailo.pyhailort.pyhailort.HailoRTStreamAborted):
        opened.configured.run_async([opened.bind(tiny_frame(5))[0]])
    opened.close()


def test_a_raising_callback_is_reported(tiny: Path, tmp_path: Path) -> None:
    hef = write_fake_hef(tmp_path / "raw.hef", tiny, nms=False)
    hailo = fake_hailo()
    opened = Opened(hailo, hef)

    def broken(completion_info: Any) -> None:
        raise RuntimeError("callback bug")

    opened.configured.run_async([opened.bind(tiny_frame(0))[0]], broken).wait(5000)
    with pytest.raises(AssertionError, match="callback raised"):
        opened.configured.run_async([opened.bind(tiny_frame(1))[0]])
    opened.close()


# --- misuse the real API refuses -----------------------------------------------------------------------


def test_misuse_raises_like_hailort(tiny: Path, tmp_path: Path) -> None:
    hef = write_fake_hef(tmp_path / "raw.hef", tiny, nms=False)
    hailo = fake_hailo()
    errors = hailo.pyhailort.pyhailort
    opened = Opened(hailo, hef)
    configured, model = opened.configured, opened.model
    outputs = {s.name: np.empty(s.shape, np.uint8) for s in model.outputs}

    unbound = configured.create_bindings(output_buffers=outputs)  # no input buffer
    with pytest.raises(errors.HailoRTInvalidOperationException):
        configured.run([unbound], 1000)
    small = configured.create_bindings(output_buffers=outputs)
    small.input().set_buffer(np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(errors.HailoRTInvalidOperationException):
        configured.run([small], 1000)
    with pytest.raises(hailo.HailoRTException, match="C_CONTIGUOUS"):
        small.input().set_buffer(np.zeros((32, 64, 3), np.uint8)[:, ::2])
    retyped = configured.create_bindings(
        output_buffers={**outputs, model.output_names[0]: np.empty((1, 6, 256), np.float32)}
    )
    retyped.input().set_buffer(tiny_frame(0))
    with pytest.raises(AssertionError, match="reinterpret"):
        configured.run([retyped], 1000)
    single = configured.create_bindings(output_buffers=outputs)
    single.input().set_buffer(tiny_frame(0))
    with pytest.raises(TypeError):
        configured.run_async(single)  # a list of bindings is required
    with pytest.raises(errors.HailoRTNotFoundException):
        model.output("no-such-output")

    hailo.fake.gate.clear()
    configured.run_async([single])
    reuse = configured.create_bindings(output_buffers=outputs)  # the same output buffers, still in flight
    reuse.input().set_buffer(tiny_frame(1))
    with pytest.raises(AssertionError, match="in flight"):
        configured.run_async([reuse])
    shared_input = configured.create_bindings(
        output_buffers={s.name: np.empty(s.shape, np.uint8) for s in model.outputs}
    )
    shared_input.input().set_buffer(single.input().get_buffer())  # reading one frame twice is fine
    configured.run_async([shared_input])
    hailo.fake.gate.set()

    configured.shutdown()
    with pytest.raises(errors.HailoRTInvalidOperationException):
        configured.run_async([single])
    opened.vdevice.release()
    with pytest.raises(AttributeError):
        opened.vdevice.create_infer_model(str(hef))
    assert hailo.fake.closed


def test_without_the_scheduler_a_model_must_be_activated(tiny: Path, tmp_path: Path) -> None:
    hef = write_fake_hef(tmp_path / "raw.hef", tiny, nms=False)
    hailo = fake_hailo()
    params = hailo.VDevice.create_params()
    assert params.scheduling_algorithm is hailo.HailoSchedulingAlgorithm.NONE  # pyhailort's default
    vdevice = hailo.VDevice(params)
    model = vdevice.create_infer_model(str(hef))
    with model.configure() as configured:
        bindings = configured.create_bindings(
            output_buffers={s.name: np.empty(s.shape, np.uint8) for s in model.outputs}
        )
        bindings.input().set_buffer(tiny_frame(0))
        with pytest.raises(hailo.pyhailort.pyhailort.HailoRTNetworkGroupNotActivatedException):
            configured.run([bindings], 1000)
        configured.activate()
        configured.run([bindings], 5000)
    with pytest.raises(AttributeError):  # after __exit__ pyhailort's handle is None
        configured.get_async_queue_size()
    vdevice.release()
    assert hailo.fake.closed


def test_files_that_are_not_hefs_and_foreign_architectures(models: Path, tiny: Path, tmp_path: Path) -> None:
    hailo = fake_hailo("4.20.0", "HAILO8L")
    errors = hailo.pyhailort.pyhailort
    with pytest.raises(errors.HailoRTInvalidHEFException, match="Invalid HEF"):
        hailo.HEF(str(models / REFERENCE))
    with pytest.raises(hailo.HailoRTException, match="HAILO_OPEN_FILE_FAILURE"):
        hailo.HEF(str(tmp_path / "missing.hef"))
    good = write_fake_hef(tmp_path / "good.hef", tiny, nms=False).read_bytes()
    hailo.HEF(good)  # bytes are a source too
    altered = bytearray(good)
    altered[-100] ^= 0xFF
    for broken, log in ((good[: len(good) - 1000], "length does not match"), (bytes(altered), "checksum")):
        with pytest.raises(errors.HailoRTInvalidHEFException):
            hailo.HEF(broken)
        assert log in hailo.fake.log[-1]
    params = hailo.VDevice.create_params()
    params.scheduling_algorithm = hailo.HailoSchedulingAlgorithm.ROUND_ROBIN
    vdevice = hailo.VDevice(params)
    with pytest.raises(errors.HailoRTInvalidHEFException):
        vdevice.create_infer_model(str(models / REFERENCE))
    hailo8 = write_fake_hef(tmp_path / "h8.hef", tiny, nms=False, hw_arch="hailo8")
    with pytest.raises(errors.HailoRTHEFNotCompatibleWithDevice):
        vdevice.create_infer_model(str(hailo8))
    assert "Device arch: HAILO8L, HEF arch: HAILO8" in hailo.fake.log[-1]
    vdevice.release()

    old = fake_hailo("4.18.0", "HAILO8L")  # before the class existed: HAILO_INVALID_HEF
    assert not hasattr(old.pyhailort.pyhailort, "HailoRTHEFNotCompatibleWithDevice")
    with open_vdevice(old) as vdevice, pytest.raises(old.pyhailort.pyhailort.HailoRTInvalidHEFException):
        vdevice.create_infer_model(str(hailo8))

    big = fake_hailo("4.20.0", "HAILO8")  # a Hailo-8L HEF runs on a Hailo-8 (slower, with a warning)
    hailo8l = write_fake_hef(tmp_path / "h8l.hef", tiny, nms=False, hw_arch="hailo8l")
    with open_vdevice(big) as vdevice:
        vdevice.create_infer_model(str(hailo8l)).configure().shutdown()
    assert "lower performance" in big.fake.log[-1]


# --- devices -------------------------------------------------------------------------------------------


def test_devices_identify_and_report_temperature() -> None:
    hailo = fake_hailo("4.20.0", "HAILO8L")
    with open_vdevice(hailo) as vdevice:
        assert vdevice.get_physical_devices_ids() == ["0001:01:00.0"]
        (device,) = vdevice.get_physical_devices()
        info = device.control.identify()
        assert info.board_name.rstrip("\x00") == "Hailo-8"
        assert str(info.device_architecture) == "HAILO8L" and info.device_architecture.name == "HAILO8L"
        assert (info.firmware_version.major, info.firmware_version.minor, info.firmware_version.revision) == (
            4,
            20,
            0,
        )
        assert str(info.firmware_version) == "4.20.0 (release,app)"
        assert info.serial_number.rstrip("\x00") == ""
        reading = device.control.get_chip_temperature()
        assert (reading.ts0_temperature, reading.ts1_temperature) == (51.0, 52.5)
        hailo.fake.temperature = (88.0, 91.5)
        assert device.control.get_chip_temperature().ts1_temperature == 91.5
        hailo.fake.temperature = hailo.HailoRTException(
            "libhailort failed with error: 18 (HAILO_FW_CONTROL_FAILURE)"
        )
        with pytest.raises(hailo.HailoRTException):
            device.control.get_chip_temperature()
        device.release()
        with pytest.raises(hailo.pyhailort.pyhailort.HailoRTInvalidOperationException):
            device.control.identify()
        # pyhailort's Device() identifies the chip: when that fails, so does get_physical_devices().
        hailo.fake.identify_error = hailo.HailoRTException("libhailort failed with error: 18")
        with pytest.raises(hailo.HailoRTException, match="error: 18"):
            vdevice.get_physical_devices()
    assert hailo.fake.closed


def test_vdevice_failures_no_device_busy_and_held() -> None:
    hailo = fake_hailo(devices=0)
    with pytest.raises(hailo.HailoRTException, match="HailoRT device not found in the system"):
        hailo.Device()
    with pytest.raises(hailo.HailoRTException, match=r"74 \(HAILO_OUT_OF_PHYSICAL_DEVICES\)"):
        open_vdevice(hailo)

    hailo = fake_hailo()
    hailo.fake.busy = True  # another process holds it
    with pytest.raises(hailo.HailoRTException, match="HAILO_OUT_OF_PHYSICAL_DEVICES"):
        open_vdevice(hailo)
    hailo.fake.busy = False
    hailo.fake.vdevice_status = "HAILO_INVALID_DRIVER_VERSION"
    with pytest.raises(hailo.HailoRTException, match="HAILO_INVALID_DRIVER_VERSION"):
        open_vdevice(hailo)
    hailo.fake.vdevice_status = None

    first = open_vdevice(hailo)
    with pytest.raises(hailo.HailoRTException, match="HAILO_OUT_OF_PHYSICAL_DEVICES"):
        open_vdevice(hailo)  # one VDevice holds the device (group_id "UNIQUE")
    first.release()
    first.release()  # idempotent
    open_vdevice(hailo).release()
    assert hailo.fake.closed


# --- versions and the seam ---------------------------------------------------------------------------


def test_releases_before_4_16_have_only_the_infervstreams_api() -> None:
    old = fake_hailo("4.15.0")
    assert old.__version__ == "4.15.0"
    assert not hasattr(old.VDevice, "create_infer_model")
    assert not hasattr(old, "AsyncInferJob") and not hasattr(old.pyhailort.pyhailort, "InferModel")
    assert hasattr(old, "InferVStreams") and hasattr(old, "InputVStreamParams")
    with pytest.raises(AssertionError, match="not emulated"):
        old.InferVStreams(None, {}, {})

    new = fake_hailo("4.20.0")
    assert hasattr(new.VDevice, "create_infer_model") and hasattr(new, "AsyncInferJob")
    # As in pyhailort: InferModel and the exception subclasses are not exported at the top level.
    assert not hasattr(new, "InferModel") and not hasattr(new, "HailoRTTimeout")
    assert issubclass(new.pyhailort.pyhailort.HailoRTTimeout, new.HailoRTException)


def test_install_fake_replaces_the_runtime_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecv_hailo import runtime

    hailo = install_fake(monkeypatch, version="4.21.0", arch="HAILO8")
    assert runtime.load_hailo() is hailo
    assert runtime.availability().available
    assert hailo.__version__ == "4.21.0" and hailo.fake.arch == "HAILO8"


def test_the_runtime_runs_unchanged_on_the_fake(models: Path, bus_path: Path, tmp_path: Path) -> None:
    from edgecv_hailo.runtime import HailoRunner

    hef = write_fake_hef(tmp_path / "y8.hef", models / REFERENCE)
    hailo = fake_hailo()
    frame = letterboxed_rgb(bus_path, (640, 640))
    runner = HailoRunner.open(hailo, hef)
    try:
        (per_class,) = runner.run(frame)
        assert isinstance(per_class, list) and len(per_class) == 80
        np.testing.assert_allclose(per_class[0][:, 4], [0.907, 0.901, 0.900, 0.374], atol=1e-3)
        results: list[Any] = []
        event = threading.Event()

        def done(outcome: Any) -> None:
            results.append(outcome)
            if len(results) == 3:
                event.set()

        for _ in range(3):
            runner.submit(frame.copy(), done)
        assert event.wait(30)
        assert all(isinstance(r, list) and len(r[0][0]) == 4 for r in results)
    finally:
        runner.close()
    assert hailo.fake.closed
    assert [call[1] for call in hailo.fake.calls if call[0] == "VDevice"] == ["ROUND_ROBIN"]


def test_a_letterboxed_frame_is_rgb(bus_path: Path) -> None:
    import cv2

    image = cv2.imread(str(bus_path))
    assert image is not None
    canvas, _ = letterbox(image.astype(np.uint8), (640, 640))
    frame = letterboxed_rgb(bus_path, (640, 640))
    assert frame.flags.c_contiguous and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, canvas[..., ::-1])

"""Reused input buffers: a frame's tensor is never rewritten while the runtime may still read it,
and in steady state a frame allocates no new tensor.

The letterboxed tensors are compared with the straightforward pipeline (``letterbox`` then a
numpy conversion) for every layout, dtype and colour order, across image-size changes in one
reused buffer (the padding must follow the image).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import edgecv
from edgecv.backend import hookimpl
from edgecv.images import read_image
from edgecv.preprocess import TensorBuffers, letterbox, preprocess
from edgecv.spec import InputSpec, Quantization
from edgecv.testing.queued import QueuedBackend, QueuedSession


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_spec(layout: str, dtype: str = "float32", size=(64, 96), **kwargs: Any) -> InputSpec:
    shape = (1, 3, *size) if layout == "NCHW" else (1, *size, 3)
    return InputSpec(name="images", shape=shape, layout=layout, dtype=dtype, size=size, **kwargs)


def reference(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """letterbox, colour, scale (and quantize), layout: one numpy step at a time."""
    canvas, _ = letterbox(image, spec.size, spec.letterbox, spec.pad_value)
    pixels = canvas[:, :, ::-1] if spec.color == "RGB" else canvas
    real = np.multiply(pixels, np.float32(spec.scale), dtype=np.float32)
    if spec.quantization is not None:
        info = np.iinfo(spec.dtype)
        q = spec.quantization
        real = np.clip(np.rint(real.astype(np.float64) / q.scale) + q.zero_point, info.min, info.max)
    tensor = real.astype(spec.dtype)[None]
    return tensor.transpose(0, 3, 1, 2) if spec.layout == "NCHW" else tensor


SPECS = {
    "float NCHW RGB": make_spec("NCHW", color="RGB", scale=1 / 255),
    "float NCHW BGR topleft": make_spec("NCHW", color="BGR", scale=1.0, letterbox="topleft"),
    "float NHWC RGB": make_spec("NHWC", color="RGB", scale=1 / 255, pad_value=0),
    "float16 NCHW": make_spec("NCHW", dtype="float16", color="RGB", scale=1 / 255),
    "uint8 NHWC BGR (in-graph cast)": make_spec(
        "NHWC", dtype="uint8", color="BGR", scale=1.0, quantization=Quantization(1.0, 0)
    ),
    "uint8 NHWC RGB (Hailo)": make_spec(
        "NHWC", dtype="uint8", color="RGB", scale=1.0, quantization=Quantization(1.0, 0)
    ),
    "uint8 NCHW": make_spec("NCHW", dtype="uint8", color="RGB", scale=1.0, quantization=Quantization(1.0, 0)),
    "int8 NHWC": make_spec(
        "NHWC", dtype="int8", color="RGB", scale=1 / 255, quantization=Quantization(0.0186584, -14)
    ),
    "int8 NCHW": make_spec(
        "NCHW", dtype="int8", color="RGB", scale=1 / 255, quantization=Quantization(0.0186584, -14)
    ),
}
# Wide, tall, already at the input size, then wide again: each change moves the padding.
IMAGES = [
    random_image(45, 100, 1),
    random_image(100, 30, 2),
    random_image(64, 96, 3),
    random_image(30, 70, 4),
]


@pytest.mark.parametrize("name", list(SPECS))
def test_one_reused_buffer_gives_the_reference_tensor_for_every_image(name: str) -> None:
    spec = SPECS[name]
    buffers = TensorBuffers(spec)
    first = None
    for image in IMAGES * 2:
        lease = buffers.lease()
        with lease.active():
            tensor, info = preprocess(image, spec)
        expected = reference(image, spec)
        assert tensor.dtype == expected.dtype and tensor.shape == expected.shape
        np.testing.assert_allclose(tensor.astype(np.float64), expected.astype(np.float64), rtol=0, atol=1e-3)
        assert info == letterbox(image, spec.size, spec.letterbox, spec.pad_value)[1]
        first = tensor if first is None else first
        if spec.dtype != "float16":  # float16 inputs are converted per frame from the float32 buffer
            assert np.shares_memory(tensor, first), "the released buffer was not reused"
        lease.release()


def test_a_buffer_is_not_reused_before_its_lease_is_released() -> None:
    spec = SPECS["float NCHW RGB"]
    buffers = TensorBuffers(spec)
    held = buffers.lease()
    with held.active():
        kept, _ = preprocess(IMAGES[0], spec)
    kept_copy = kept.copy()
    for image in IMAGES[1:]:
        other = buffers.lease()
        with other.active():
            tensor, _ = preprocess(image, spec)
        assert not np.shares_memory(tensor, kept)
        other.release()
    np.testing.assert_array_equal(kept, kept_copy)  # still the first frame
    held.release()
    reused = []
    for _ in range(2):  # two buffers are free now: the held one and the one the others shared
        lease = buffers.lease()
        with lease.active():
            reused.append(preprocess(IMAGES[1], spec)[0])
    assert any(np.shares_memory(tensor, kept) for tensor in reused)


def test_without_a_lease_every_call_gets_fresh_arrays() -> None:
    """``preprocess`` called directly (calibration, exporters keep the tensors) never reuses."""
    spec = SPECS["uint8 NHWC BGR (in-graph cast)"]
    image = random_image(64, 96)  # already at the input size: the tensor must not be the image
    first, _ = preprocess(image, spec)
    second, _ = preprocess(image, spec)
    assert not np.shares_memory(first, second) and not np.shares_memory(first, image)
    np.testing.assert_array_equal(first[0], image)


class RecordsInputs:
    """Wraps ``edgecv_infer`` (the synchronous path) and keeps each tensor it sees (alive, so a new
    allocation cannot land at a freed buffer's address)."""

    def __init__(self) -> None:
        self.tensors: list[np.ndarray] = []

    @hookimpl(hookwrapper=True)
    def edgecv_infer(self, spec: Any, session: Any, tensor: Any) -> Iterator[None]:
        self.tensors.append(tensor)
        yield


def test_predict_reuses_one_tensor_and_model_preprocess_hands_out_fresh_ones(
    fresh_plugins: ModuleType, models: Path, bus_path: Path, zidane_path: Path
) -> None:
    recorder = RecordsInputs()
    fresh_plugins.register(recorder, name="records-inputs")
    model = edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", backend="onnx", threads=1)
    bus, zidane = read_image(bus_path), read_image(zidane_path)
    results = [model.predict(image) for image in (bus, zidane, bus)]
    first = recorder.tensors[0]
    assert all(np.shares_memory(t, first) for t in recorder.tensors), "a frame allocated a new tensor"
    assert results[0].labels == results[2].labels and results[0].labels != results[1].labels
    mine, _ = model.preprocess(bus)
    model.predict(zidane)
    np.testing.assert_array_equal(mine, model.preprocess(bus)[0])  # not overwritten by predict
    model.close()


@pytest.fixture
def queued(fresh_plugins: ModuleType, models: Path) -> Iterator[tuple[edgecv.Model, QueuedSession]]:
    backend = QueuedBackend()
    fresh_plugins.register(backend, name="queued")
    model = edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", backend="queued", threads=1)
    session = backend.sessions[-1]
    yield model, session
    session.gate.set()
    model.close()


def test_frames_in_flight_keep_their_own_tensors_until_the_device_is_done(
    queued: tuple[edgecv.Model, QueuedSession], bus_path: Path, zidane_path: Path
) -> None:
    """What the device reads when it finally runs a frame is what was prepared for that frame,
    however many later frames were preprocessed meanwhile; released buffers are then reused."""
    model, session = queued
    submitted: list[tuple[int, np.ndarray]] = []
    ran: dict[int, np.ndarray] = {}
    lock = threading.Lock()
    queue_up, run = session.submit, session.inner.run

    def recording_submit(tensor: np.ndarray) -> Any:
        submitted.append((address(tensor), tensor.copy()))
        return queue_up(tensor)

    def recording_run(tensor: np.ndarray) -> Any:
        with lock:
            ran[address(tensor)] = tensor.copy()
        return run(tensor)

    session.submit, session.inner.run = recording_submit, recording_run  # type: ignore[method-assign]
    bus, zidane = read_image(bus_path), read_image(zidane_path)
    frames = [bus, zidane, bus[:, ::-1].copy(), zidane[::2, ::2].copy()]
    session.gate.clear()
    futures = [model.submit(image) for image in frames]
    session.gate.set()
    results = [future.result(timeout=60) for future in futures]
    assert len({key for key, _ in submitted}) == len(frames)  # one buffer per frame in flight
    for key, prepared in submitted:
        np.testing.assert_array_equal(ran[key], prepared)
    for image, result in zip(frames, results, strict=True):
        assert result.labels == model.predict(image).labels
    # Every buffer is back: the next frame takes one of them instead of a new one.
    model.submit(bus).result(timeout=60)
    assert submitted[-1][0] in {key for key, _ in submitted[:-1]}


def address(tensor: np.ndarray) -> int:
    return int(tensor.__array_interface__["data"][0])


def test_a_caller_with_its_own_leases_gets_reuse_only_after_release(
    models: Path, bus_path: Path, zidane_path: Path
) -> None:
    """What a pipelined loop does: preprocess with a lease, infer elsewhere, release after infer."""
    model = edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", backend="onnx", threads=1)
    bus, zidane = read_image(bus_path), read_image(zidane_path)
    first_lease, second_lease = model.lease(), model.lease()
    first, _ = model.preprocess(bus, first_lease)
    expected = first.copy()
    second, _ = model.preprocess(zidane, second_lease)  # the first is still in flight
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(first, model.preprocess(bus)[0])
    first_lease.release()
    third_lease = model.lease()
    third, _ = model.preprocess(zidane, third_lease)
    assert np.shares_memory(third, first)  # the released buffer, not a new one
    second_lease.release()
    third_lease.release()
    model.close()

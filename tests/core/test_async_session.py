"""``Model.submit`` keeps several frames in flight on a session with ``submit`` (an ``AsyncSession``).

The asynchronous session (``edgecv.testing.queued``) is the real ONNX Runtime session of the onnx
backend with a worker thread in front, as an accelerator's queue would be; a gate holds the worker
so that the test sees the frames really queued before any runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import edgecv
from edgecv.backend import AsyncSession, hookimpl
from edgecv.images import read_image
from edgecv.testing.queued import QueuedBackend, QueuedSession


class TimesInference:
    """A plugin that wraps ``edgecv_infer``: the synchronous path, so it sees every frame."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl(hookwrapper=True)
    def edgecv_infer(self, spec: Any, session: Any, tensor: Any) -> Iterator[None]:
        self.calls += 1
        yield


@pytest.fixture
def queued(fresh_plugins: ModuleType, models: Path) -> Iterator[tuple[edgecv.Model, QueuedSession]]:
    backend = QueuedBackend()
    fresh_plugins.register(backend, name="queued")
    model = edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", backend="queued")
    session = backend.sessions[-1]
    session.gate.clear()  # frames queue up until the test opens the gate
    yield model, session
    session.gate.set()
    model.close()


def test_frames_are_in_flight_together_and_match_the_synchronous_pipeline(
    queued: tuple[edgecv.Model, QueuedSession], bus_path: Path, zidane_path: Path
) -> None:
    model, session = queued
    assert isinstance(model.session, AsyncSession)
    images = [read_image(bus_path), read_image(zidane_path), read_image(bus_path)]
    futures = [model.submit(image, source=f"frame{i}") for i, image in enumerate(images)]
    assert session.submitted == 3
    assert not any(f.done() for f in futures), "submit waited for the device"
    session.gate.set()
    results = [f.result(timeout=60) for f in futures]
    for image, result, index in zip(images, results, range(3), strict=True):
        expected = model.predict(image)
        assert result.labels == expected.labels and len(result) > 0
        np.testing.assert_allclose(result.boxes, expected.boxes, atol=1e-4)
        assert result.source == f"frame{index}"
        assert result.timings is not None and result.timings.infer > 0


def test_a_failed_frame_fails_its_future_only(
    queued: tuple[edgecv.Model, QueuedSession], bus_path: Path
) -> None:
    model, session = queued
    image = read_image(bus_path)
    session.fail_next = True
    failed = model.submit(image)
    fine = model.submit(image)
    session.gate.set()
    with pytest.raises(RuntimeError, match="the device lost the frame"):
        failed.result(timeout=60)
    assert fine.result(timeout=60).labels == model.predict(image).labels


def test_a_plugin_wrapping_infer_gets_the_synchronous_path(
    fresh_plugins: ModuleType, queued: tuple[edgecv.Model, QueuedSession], bus_path: Path
) -> None:
    model, session = queued
    wrapper = TimesInference()
    fresh_plugins.register(wrapper, name="times-inference")
    session.gate.set()
    future = model.submit(read_image(bus_path))
    assert future.done() and wrapper.calls == 1 and session.submitted == 0
    assert len(future.result()) == 5


def test_a_synchronous_session_returns_a_finished_future(models: Path, bus_path: Path) -> None:
    model = edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", backend="onnx")
    assert not isinstance(model.session, AsyncSession)
    future = model.submit(read_image(bus_path))
    assert future.done() and future.result().labels == model(bus_path).labels

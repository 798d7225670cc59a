"""With an asynchronous session the runtime keeps several frames in flight, and nothing else changes.

The session is the real ONNX Runtime session behind a queue (``edgecv.testing.queued``), as a
Hailo or TensorRT device's would be. The same video through the same model, one frame at a time
and with frames in flight, must give the same results in the same order; a stalled or failed
frame on the device is a watchdog restart, as a stalled worker is.
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
from edgecv.runtime.loop import RunConfig, Runtime
from edgecv.runtime.results import FrameResult
from edgecv.testing.queued import QueuedBackend, QueuedSession

MODEL = "yolo11n_320_fp32_dequant.onnx"
VIDEO = "pedestrians_vtest_30s.mp4"


class Recorder:
    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.restarts: list[str] = []

    @edgecv.hookimpl
    def edgecv_on_result(self, result: FrameResult) -> None:
        self.results.append(result)

    @edgecv.hookimpl
    def edgecv_on_restart(self, reason: str, restarts: int) -> None:
        self.restarts.append(reason)


@pytest.fixture
def queued(fresh_plugins: ModuleType, models: Path) -> Iterator[tuple[edgecv.Model, QueuedSession]]:
    backend = QueuedBackend()
    fresh_plugins.register(backend, name="queued")
    model = edgecv.load(models / MODEL, backend="queued")
    yield model, backend.sessions[-1]
    model.close()


def run(model: edgecv.Model, video: Path, config: RunConfig) -> Recorder:
    recorder = Recorder()
    with Runtime(model, video, config, thermal=False, plugins=[recorder]) as runtime:
        runtime.run()
    return recorder


def same_results(ours: list[FrameResult], theirs: list[FrameResult]) -> None:
    assert [(r.frame, r.inferred) for r in ours] == [(r.frame, r.inferred) for r in theirs]
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.detections.labels == other.detections.labels, mine.frame
        np.testing.assert_allclose(mine.detections.boxes, other.detections.boxes, atol=1e-3)
        assert np.array_equal(mine.detections.track_ids, other.detections.track_ids), mine.frame


@pytest.mark.parametrize(("skip", "track"), [(1, False), (3, True)])
def test_frames_in_flight_give_the_synchronous_results(
    queued: tuple[edgecv.Model, QueuedSession], models: Path, assets: Path, skip: int, track: bool
) -> None:
    model, session = queued
    assert model.asynchronous
    config = RunConfig(max_frames=24, skip=skip, track=track, in_flight=3)
    # Hold the device until the loop has had time to queue up to in_flight frames and wait.
    session.gate.clear()
    threading.Timer(0.5, session.gate.set).start()
    in_flight = run(model, assets / "videos" / VIDEO, config)
    one_at_a_time = run(edgecv.load(models / MODEL, backend="onnx"), assets / "videos" / VIDEO, config)
    assert session.max_outstanding == 3
    assert session.submitted == sum(r.inferred for r in in_flight.results) == -(-24 // skip)
    assert len(in_flight.results) == 24 and in_flight.restarts == []
    same_results(in_flight.results, one_at_a_time.results)


def test_in_flight_1_and_an_infer_wrapper_run_one_frame_at_a_time(
    fresh_plugins: ModuleType, queued: tuple[edgecv.Model, QueuedSession], assets: Path
) -> None:
    model, session = queued
    run(model, assets / "videos" / VIDEO, RunConfig(max_frames=4, in_flight=1))
    assert session.submitted == 0

    class Wraps:
        @edgecv.hookimpl(hookwrapper=True)
        def edgecv_infer(self, spec: Any, session: Any, tensor: Any) -> Iterator[None]:
            yield

    fresh_plugins.register(Wraps(), name="wraps-infer")
    assert not model.asynchronous
    recorder = run(model, assets / "videos" / VIDEO, RunConfig(max_frames=4))
    assert session.submitted == 0 and all(r.inferred for r in recorder.results)


def test_a_stalled_frame_on_the_device_is_a_watchdog_restart(
    queued: tuple[edgecv.Model, QueuedSession], assets: Path
) -> None:
    model, session = queued
    session.stall_next = True
    recorder = run(model, assets / "videos" / VIDEO, RunConfig(max_frames=12, stall_timeout_s=0.5))
    assert recorder.restarts and "no result in 0.5 s" in recorder.restarts[0]
    assert len(recorder.results) == 12
    assert not recorder.results[0].inferred  # lost with the stall
    assert recorder.results[-1].inferred and len(recorder.results[-1].detections) > 0


def test_a_failed_frame_is_a_restart_and_the_run_goes_on(
    queued: tuple[edgecv.Model, QueuedSession], assets: Path
) -> None:
    model, session = queued
    session.fail_next = True
    recorder = run(model, assets / "videos" / VIDEO, RunConfig(max_frames=6))
    assert recorder.restarts == ["inference failed: RuntimeError: the device lost the frame"]
    assert [r.inferred for r in recorder.results] == [False] + [True] * 5

"""The runtime's Python API under faults: stalled and disconnecting sources, hung and crashing
inference, and the thermal throttle, each observed through the runtime's hooks.

Faults are injected at the seams (a ``Capture`` opener for the source, a ``Model`` subclass for
inference, a temperature reader for the governor); the model, decoding and tracking are real.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

import edgecv
from edgecv import plugins
from edgecv.backends import Outputs
from edgecv.model import Model
from edgecv.runtime.loop import RunConfig, Runtime, RuntimeFailure
from edgecv.runtime.sources import open_source
from edgecv.runtime.thermal import ThermalGovernor, ThermalPolicy
from edgecv.sensors import Temperature

Image = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def frames(assets: Path) -> list[Image]:
    capture = cv2.VideoCapture(str(assets / "videos" / "pedestrians_vtest_30s.mp4"))
    images = []
    for _ in range(12):
        ok, image = capture.read()
        assert ok
        images.append(image)
    return images


@pytest.fixture(scope="module")
def model(models: Path) -> Model:
    return edgecv.load(str(models / "yolov8n_fp32_dequant.onnx"))


class Recorder:
    """Hook implementations that record what the runtime reported."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.restarts: list[tuple[str, int]] = []
        self.throttles: list[Any] = []

    @edgecv.hookimpl
    def edgecv_on_result(self, result: Any) -> None:
        self.results.append(result)

    @edgecv.hookimpl
    def edgecv_on_restart(self, reason: str, restarts: int) -> None:
        self.restarts.append((reason, restarts))

    @edgecv.hookimpl
    def edgecv_on_throttle(self, state: Any) -> None:
        self.throttles.append(state)


class ScriptedCapture:
    """A camera that plays ``script``: an image, ``"fail"`` (a read error) or ``"hang"`` (blocks)."""

    def __init__(self, script: Iterator[Image | str], release: threading.Event) -> None:
        self.script = script
        self.release_event = release

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, Image | None]:
        step = next(self.script, "hang")
        if isinstance(step, str) and step == "hang":
            self.release_event.wait(30)
            return False, None
        if isinstance(step, str):
            return False, None
        time.sleep(0.01)
        return True, step

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return True

    def release(self) -> None:
        pass


def _camera(scripts: list[Iterable[Image | str]]) -> tuple[Any, threading.Event]:
    """A live source whose n-th open plays ``scripts[n]`` (later opens hang)."""
    release = threading.Event()
    opened = iter(scripts)

    def opener(spec: str | int) -> ScriptedCapture:
        return ScriptedCapture(iter(next(opened, [])), release)

    return open_source("rtsp://camera.local/stream", opener=opener, backoff_initial_s=0.05), release


def test_stalled_source_is_restarted(model: Model, frames: list[Image]) -> None:
    source, release = _camera([[*frames[:5], "hang"], itertools.cycle(frames)])
    recorder = Recorder()
    runtime = Runtime(
        model, source, RunConfig(max_frames=12, stall_timeout_s=1.0), thermal=False, plugins=[recorder]
    )
    try:
        stats = runtime.run()
    finally:
        release.set()
    assert stats.processed == 12
    assert stats.restarts == 1
    assert len(recorder.restarts) == 1 and "no frame" in recorder.restarts[0][0]
    assert source.stats.restarts == 1


def test_disconnected_stream_reconnects(model: Model, frames: list[Image]) -> None:
    source, release = _camera([[*frames[:4], "fail"], itertools.cycle(frames)])
    recorder = Recorder()
    runtime = Runtime(
        model, source, RunConfig(max_frames=10, stall_timeout_s=5.0), thermal=False, plugins=[recorder]
    )
    try:
        stats = runtime.run()
    finally:
        release.set()
    assert stats.processed == 10
    assert stats.reconnects == 1 and stats.restarts == 0
    assert any("reconnected" in reason for reason, _ in recorder.restarts)


class FaultyModel(Model):
    """The real model, with a fault on chosen calls: ``"hang"`` blocks, ``"raise"`` raises."""

    def __init__(self, real: Model, faults: dict[int, str]) -> None:
        super().__init__(real.spec, real.session, plugins.plugin_manager(), real.options)
        self.faults = faults
        self.calls = 0
        self.unblock = threading.Event()

    def infer(self, tensor: npt.NDArray[Any]) -> Outputs:  # the stage the inference thread runs
        self.calls += 1
        fault = self.faults.get(self.calls, self.faults.get(0))
        if fault == "hang":
            self.unblock.wait(30)
        elif fault == "raise":
            raise RuntimeError("device lost")
        return super().infer(tensor)


def test_hung_and_crashing_inference_restart_the_worker(model: Model, frames: list[Image]) -> None:
    faulty = FaultyModel(model, {3: "hang", 6: "raise"})
    source, release = _camera([itertools.cycle(frames)])
    recorder = Recorder()
    runtime = Runtime(
        faulty, source, RunConfig(max_frames=10, stall_timeout_s=1.0), thermal=False, plugins=[recorder]
    )
    try:
        stats = runtime.run()
    finally:
        release.set()
        faulty.unblock.set()
    assert stats.processed == 10
    assert stats.restarts == 2
    reasons = [reason for reason, _ in recorder.restarts]
    assert "gave no result" in reasons[0] and "device lost" in reasons[1], reasons
    assert [r.inferred for r in recorder.results].count(False) == 2  # the two lost frames
    assert all(len(r.detections) > 0 for r in recorder.results if r.inferred)


def test_inference_that_keeps_failing_stops_the_run(model: Model, frames: list[Image]) -> None:
    faulty = FaultyModel(model, {0: "raise"})
    source, release = _camera([itertools.cycle(frames)])
    runtime = Runtime(faulty, source, RunConfig(max_failures=3), thermal=False)
    try:
        with pytest.raises(
            RuntimeFailure, match="Inference failed 3 times in a row; last: RuntimeError: device lost"
        ):
            runtime.run()
    finally:
        release.set()
    assert source.stats.read >= 3


def test_thermal_throttle_stretches_the_stride_and_pauses(model: Model, frames: list[Image]) -> None:
    # The temperature follows the frames read (the loop polls before each read; it reads ahead of
    # the results while frames are in flight): 60 (full speed), 80 (0.6), 86 (paused), 82 (still
    # paused: hysteresis), 70 (resumed).
    ramp = [60.0] * 3 + [80.0] * 6 + [86.0] * 3 + [82.0] * 2 + [70.0] * 6
    polls = itertools.count()
    governor = ThermalGovernor(
        ThermalPolicy(), reader=lambda: Temperature(ramp[min(next(polls), 19)], "fake zone"), interval_s=0.0
    )
    source, release = _camera([itertools.cycle(frames)])
    recorder = Recorder()
    runtime = Runtime(model, source, RunConfig(max_frames=20), thermal=governor, plugins=[recorder])
    try:
        runtime.run()
    finally:
        release.set()
    stats = runtime.stats
    states = [(s.factor, s.paused) for s in recorder.throttles]
    assert states[0] == (pytest.approx(0.6), False)
    assert any(paused for _, paused in states)
    assert states[-1] == (1.0, False)
    inferred = [r.inferred for r in recorder.results]
    paused = [r.paused for r in recorder.results]
    assert inferred[:3] == [True, True, True]
    assert stats.paused_frames == sum(paused) >= 4
    assert not any(i and p for i, p in zip(inferred, paused, strict=True))
    assert all(len(r.detections) == 0 for r in recorder.results if r.paused)
    # At factor 0.6 the stride is ceil(1 / 0.6) = 2: every other frame is inferred.
    throttled = [r.inferred for r in recorder.results if r.throttle == pytest.approx(0.6) and not r.paused]
    assert len(throttled) >= 4 and throttled[:4] in ([True, False, True, False], [False, True, False, True])
    assert all(inferred[-5:])  # back to every frame once cool

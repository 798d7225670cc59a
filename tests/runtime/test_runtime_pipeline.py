"""The pipelined run: the session infers frame N in its thread while the loop preprocesses frame N+1
and finishes frame N-1, and nothing else changes.

The model, session, video and tracker are real; a ``Model`` subclass records when each stage ran
(and slows inference, so that the overlap does not depend on the machine's speed).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import edgecv
from edgecv import plugins
from edgecv.backends import Outputs
from edgecv.detections import Detections
from edgecv.model import Model
from edgecv.postprocess import PostprocessOptions
from edgecv.preprocess import Lease, LetterboxInfo
from edgecv.runtime.loop import RunConfig, Runtime, RuntimeFailure
from edgecv.runtime.results import FrameResult
from edgecv.testing.cli import run_edgecv

MODEL = "yolo11n_320_fp32_dequant.onnx"
VIDEO = "pedestrians_vtest_30s.mp4"
INFER_DELAY_S = 0.03


@pytest.fixture(scope="module")
def real(models: Path) -> Iterator[Model]:
    with edgecv.load(models / MODEL) as model:
        yield model


@pytest.fixture(scope="module")
def video(assets: Path) -> Path:
    return assets / "videos" / VIDEO


class StagedModel(Model):
    """The real model; each stage logs (stage, frame count, thread, start, end), inference slowed."""

    def __init__(self, real: Model, delay_s: float = INFER_DELAY_S) -> None:
        super().__init__(real.spec, real.session, plugins.plugin_manager(), real.options)
        self.delay_s = delay_s
        self.log: list[tuple[str, int, str, float, float]] = []
        self.overwritten = 0
        self.buffers: set[int] = set()
        """Frames whose tensor changed while the session was about to read it."""
        self._counts = {"pre": 0, "infer": 0, "post": 0}

    def _record(self, stage: str, start: float) -> None:
        self.log.append(
            (stage, self._counts[stage], threading.current_thread().name, start, time.perf_counter())
        )
        self._counts[stage] += 1

    def preprocess(
        self, image: npt.NDArray[np.uint8], lease: Lease | None = None
    ) -> tuple[npt.NDArray[Any], LetterboxInfo]:
        start = time.perf_counter()
        try:
            return super().preprocess(image, lease)
        finally:
            self._record("pre", start)

    def infer(self, tensor: npt.NDArray[Any]) -> Outputs:
        start = time.perf_counter()
        before = tensor.copy()
        self.buffers.add(tensor.ctypes.data)
        time.sleep(self.delay_s)  # meanwhile the loop prepares the next frame
        self.overwritten += not np.array_equal(before, tensor)
        try:
            return super().infer(tensor)
        finally:
            self._record("infer", start)

    def postprocess(self, outputs: Any, letterbox: LetterboxInfo, options: PostprocessOptions) -> Detections:
        start = time.perf_counter()
        try:
            return super().postprocess(outputs, letterbox, options)
        finally:
            self._record("post", start)

    def stage(self, name: str) -> list[tuple[int, str, float, float]]:
        return [(n, thread, start, end) for stage, n, thread, start, end in self.log if stage == name]


class Recorder:
    def __init__(self) -> None:
        self.results: list[FrameResult] = []

    @edgecv.hookimpl
    def edgecv_on_result(self, result: FrameResult) -> None:
        self.results.append(result)


def run(model: Model, video: Path, config: RunConfig) -> list[FrameResult]:
    recorder = Recorder()
    with Runtime(model, video, config, thermal=False, plugins=[recorder]) as runtime:
        runtime.run()
    return recorder.results


def same_results(ours: list[FrameResult], theirs: list[FrameResult]) -> None:
    assert [(r.frame, r.inferred) for r in ours] == [(r.frame, r.inferred) for r in theirs]
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.detections.labels == other.detections.labels, mine.frame
        np.testing.assert_allclose(mine.detections.boxes, other.detections.boxes, atol=1e-3)
        np.testing.assert_allclose(mine.detections.scores, other.detections.scores, atol=1e-5)
        assert (mine.detections.track_ids is None) == (other.detections.track_ids is None), mine.frame
        np.testing.assert_array_equal(mine.detections.track_ids, other.detections.track_ids)


def overlapped(model: StagedModel) -> int:
    """How many preprocess calls ran while a frame was inferring."""
    infers = [(start, end) for _, _, start, end in model.stage("infer")]
    return sum(
        1 for _, _, start, _ in model.stage("pre") if any(begin < start < end for begin, end in infers)
    )


def test_stages_overlap_in_their_threads(real: Model, video: Path) -> None:
    model = StagedModel(real)
    results = run(model, video, RunConfig(max_frames=8, in_flight=2))
    assert [r.frame for r in results] == list(range(8))
    assert all(r.inferred and len(r.detections) > 0 for r in results)
    assert {thread for _, thread, _, _ in model.stage("infer")} == {"edgecv-inference"}
    loop_thread = threading.current_thread().name
    assert {thread for _, thread, _, _ in model.stage("pre")} == {loop_thread}
    assert {thread for _, thread, _, _ in model.stage("post")} == {loop_thread}
    # Each frame after the first is preprocessed while the one before it infers (30 ms).
    assert overlapped(model) >= 6
    # The stage timings are the stages' own: a frame's wait for the thread counts in none.
    assert all(INFER_DELAY_S * 1e3 <= r.detections.timings.infer < 3 * INFER_DELAY_S * 1e3 for r in results)  # type: ignore[union-attr]


def test_one_in_flight_runs_the_stages_in_turn(real: Model, video: Path) -> None:
    model = StagedModel(real)
    run(model, video, RunConfig(max_frames=6, in_flight=1))
    assert overlapped(model) == 0


@pytest.mark.parametrize(("skip", "track"), [(1, False), (3, True)])
def test_pipelined_run_gives_the_sequential_results(real: Model, video: Path, skip: int, track: bool) -> None:
    config = RunConfig(max_frames=18, skip=skip, track=track)
    pipelined = run(real, video, RunConfig(max_frames=18, skip=skip, track=track, in_flight=2))
    sequential = run(real, video, RunConfig(max_frames=18, skip=skip, track=track, in_flight=1))
    assert len(pipelined) == 18
    assert [r.inferred for r in pipelined] == [i % skip == 0 for i in range(18)]
    same_results(pipelined, sequential)
    assert config.in_flight is None  # the default: pipelined
    same_results(run(real, video, config), pipelined)


def test_the_next_frame_never_overwrites_the_tensor_in_flight(real: Model, video: Path) -> None:
    # The session reads frame N's tensor 30 ms after it was handed over; by then the loop has
    # preprocessed frame N+1 into a reused buffer. Had it been frame N's (one buffer for all, or
    # a buffer released before the session ran), the session would run N+1's pixels as frame N.
    model = StagedModel(real)
    run(model, video, RunConfig(max_frames=8, in_flight=2))
    assert overlapped(model) >= 6
    assert model.overwritten == 0
    # Yet no buffer per frame: one for the frame inferring, one for the next (and one to spare).
    assert 2 <= len(model.buffers) <= 3


class FailingPostprocess(StagedModel):
    def postprocess(self, outputs: Any, letterbox: LetterboxInfo, options: PostprocessOptions) -> Detections:
        raise RuntimeError("decoder broke")


def test_a_failing_stage_in_the_loop_thread_stops_the_run_with_one_error(real: Model, video: Path) -> None:
    with pytest.raises(
        RuntimeFailure, match="Inference failed 3 times in a row; last: RuntimeError: decoder broke"
    ):
        run(FailingPostprocess(real, delay_s=0.0), video, RunConfig(max_failures=3, in_flight=2))
    assert not [t for t in threading.enumerate() if t.name == "edgecv-inference" and t.is_alive()]


def test_stop_completes_the_frames_in_flight_and_ends_the_thread(real: Model, video: Path) -> None:
    model = StagedModel(real)
    recorder = Recorder()

    class StopAtThree:
        @edgecv.hookimpl
        def edgecv_on_result(self, result: FrameResult) -> None:
            if result.frame == 3:
                runtime.stop()

    runtime = Runtime(model, video, RunConfig(in_flight=2), thermal=False, plugins=[recorder, StopAtThree()])
    with runtime:
        stats = runtime.run()
    frames = [r.frame for r in recorder.results]
    # Frame 4 was already read and submitted when frame 3 asked to stop: it completes too.
    assert frames == list(range(len(frames))) and 4 <= len(frames) <= 6
    assert all(r.inferred for r in recorder.results)
    assert stats.processed == len(frames) == len(model.stage("post"))
    assert runtime.source.closed
    assert not [t for t in threading.enumerate() if t.name == "edgecv-inference" and t.is_alive()]


def test_run_in_flight_option(real: Model, video: Path) -> None:
    result = run_edgecv(
        "run", video, "--model", real.spec.path, "--max-frames", "4", "--json", "--thermal", "off",
        "--backend", real.backend, "--in-flight", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    one_at_a_time = [json.loads(line) for line in result.stdout.splitlines()]
    assert [f["frame"] for f in one_at_a_time] == [0, 1, 2, 3]
    pipelined = run(real, video, RunConfig(max_frames=4, in_flight=2))
    for line, frame in zip(one_at_a_time, pipelined, strict=True):
        assert [d["label"] for d in line["detections"]] == list(frame.detections.labels)

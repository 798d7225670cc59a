"""Each ``Runtime`` owns its observers: two runtimes on two videos in two threads, one output each.

Every output sees only its own runtime's frames (``FrameResult.source`` names the video), a plugin
registered process-wide sees both, and a runtime's plugins never reach the process-wide manager.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

import edgecv
from edgecv.errors import PluginError
from edgecv.events.model import Event
from edgecv.events.store import EventStore
from edgecv.runtime.loop import RunConfig, Runtime
from edgecv.runtime.observers import run_manager
from edgecv.runtime.results import FrameResult
from edgecv.runtime.thermal import ThrottleState

FRAMES = {"pedestrians_vtest_30s.mp4": 24, "one-by-one-person-detection.mp4": 37}


class Collector:
    """An output: keeps every result it is given. ``barrier`` holds the first frame until both
    runtimes are running, so that their loops overlap."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.results: list[FrameResult] = []
        self.lock = threading.Lock()  # the process-wide collector is called from both loop threads
        self.barrier = barrier

    @edgecv.hookimpl
    def edgecv_on_result(self, result: FrameResult) -> None:
        if self.barrier is not None and not self.results:
            self.barrier.wait(timeout=120)
        with self.lock:
            self.results.append(result)


def test_two_runtimes_in_two_threads_see_only_their_own_frames(
    fresh_plugins: ModuleType, models: Path, assets: Path
) -> None:
    model = edgecv.load(str(models / "yolov8n_fp32_dequant.onnx"))  # one model shared by both
    everyone = Collector()
    fresh_plugins.register(everyone, name="everyone")
    barrier = threading.Barrier(len(FRAMES))
    runs: dict[str, tuple[Runtime, Collector]] = {}
    for name, frames in FRAMES.items():
        own = Collector(barrier)
        runtime = Runtime(
            model, assets / "videos" / name, RunConfig(max_frames=frames), thermal=False, plugins=[own]
        )
        runs[name] = (runtime, own)
    errors: list[BaseException] = []

    def serve(runtime: Runtime) -> None:
        try:
            with runtime:
                runtime.run()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=serve, args=(runtime,)) for runtime, _ in runs.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    names = {name: runtime.source.name for name, (runtime, _) in runs.items()}
    assert len(set(names.values())) == 2
    for name, (runtime, own) in runs.items():
        assert {r.source for r in own.results} == {names[name]}
        assert [r.frame for r in own.results] == list(range(FRAMES[name]))
        assert runtime.stats.processed == FRAMES[name]
        assert all(r.inferred for r in own.results)
        assert not fresh_plugins.plugin_manager().is_registered(own)  # never process-wide
    seen = Counter(r.source for r in everyone.results)
    assert seen == {names[name]: frames for name, frames in FRAMES.items()}
    for name in FRAMES:  # each runtime's frames reach the shared plugin in order
        assert [r.frame for r in everyone.results if r.source == names[name]] == list(range(FRAMES[name]))


class WrongHook:
    @edgecv.hookimpl
    def edgecv_on_result(self, frame: int) -> None:  # the spec's argument is ``result``
        raise AssertionError("never called")


def test_a_plugin_that_does_not_match_the_hookspecs_fails_with_its_name(
    fresh_plugins: ModuleType, models: Path, assets: Path
) -> None:
    model = edgecv.load(str(models / "yolov8n_fp32_dequant.onnx"))
    video = assets / "videos" / "pedestrians_vtest_30s.mp4"
    runtime = Runtime(model, video, RunConfig(max_frames=2), thermal=False, plugins=[WrongHook()])
    with pytest.raises(PluginError, match=r"WrongHook.*edgecv_on_result"):
        runtime.run()
    assert runtime.source.closed and runtime.stats.processed == 0  # the failed run closed its source


# --- a failing observer is named; one that observes the past does not stop the run ---------------


class FailsOnEvents:
    """Fails on every batch of events (already committed when it is called)."""

    def __init__(self) -> None:
        self.calls = 0

    @edgecv.hookimpl
    def edgecv_on_events(self, events: Sequence[Event]) -> None:
        self.calls += 1
        raise ConnectionError("alarm server unreachable")


class EventCounter:
    def __init__(self) -> None:
        self.events: list[Event] = []

    @edgecv.hookimpl
    def edgecv_on_events(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


def test_a_failing_events_observer_is_logged_and_the_run_goes_on(
    fresh_plugins: ModuleType, models: Path, assets: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = edgecv.load(str(models / "yolo11n_320_fp32_dequant.onnx"))
    failing, counter = FailsOnEvents(), EventCounter()
    fresh_plugins.register(failing, name="alarm")
    runtime = Runtime(
        model,
        assets / "videos" / "pedestrians_vtest_30s.mp4",
        RunConfig(max_frames=8, event_flush_s=0.01, event_batch=1),
        events=tmp_path / "events.db",
        thermal=False,
        plugins=[counter],
    )
    with caplog.at_level(logging.DEBUG, logger="edgecv"):
        stats = runtime.run()
    assert stats.processed == 8  # every frame, although every batch failed in the observer
    assert failing.calls >= 2 and stats.events_written == len(counter.events) > 0  # the others saw them all
    with EventStore(tmp_path / "events.db") as store:
        assert store.stats().pending == stats.events_written  # committed before the observers ran
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "alarm" in r.getMessage()]
    assert len(warnings) == 1  # once; the later failures at debug level
    expected = "plugin 'alarm' failed in edgecv_on_events: ConnectionError: alarm server unreachable"
    assert f"{expected}; the run goes on" in warnings[0].getMessage()
    debug = [
        r for r in caplog.records if r.levelno == logging.DEBUG and "plugin 'alarm' failed" in r.getMessage()
    ]
    assert len(debug) == failing.calls - 1


class FailsOnResult:
    @edgecv.hookimpl
    def edgecv_on_result(self, result: FrameResult) -> None:
        raise KeyError("no such output")


def test_a_failing_result_observer_stops_the_run_naming_it(
    fresh_plugins: ModuleType, models: Path, assets: Path
) -> None:
    model = edgecv.load(str(models / "yolo11n_320_fp32_dequant.onnx"))
    collector = Collector()
    video = assets / "videos" / "pedestrians_vtest_30s.mp4"
    runtime = Runtime(
        model, video, RunConfig(max_frames=5), thermal=False, plugins=[collector, FailsOnResult()]
    )
    with pytest.raises(PluginError, match=r"plugin 'FailsOnResult' failed in edgecv_on_result: KeyError"):
        runtime.run()
    assert [r.frame for r in collector.results] == [0]  # the other observers still saw that frame
    assert runtime.source.closed


class FailsOnNotices:
    @edgecv.hookimpl
    def edgecv_on_restart(self, reason: str, restarts: int) -> None:
        raise RuntimeError("pager down")

    @edgecv.hookimpl
    def edgecv_on_throttle(self, state: ThrottleState) -> None:
        raise RuntimeError("pager down")


def test_failing_restart_and_throttle_observers_are_logged(
    fresh_plugins: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    hook = run_manager([FailsOnNotices()]).hook
    with caplog.at_level(logging.WARNING, logger="edgecv"):
        hook.edgecv_on_restart(reason="stalled", restarts=1)
        hook.edgecv_on_throttle(state=ThrottleState(0.5, False, 80.0, "cpu", "hot"))
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "'FailsOnNotices' failed in edgecv_on_restart: RuntimeError: pager down" in m for m in messages
    )
    assert any(
        "'FailsOnNotices' failed in edgecv_on_throttle: RuntimeError: pager down" in m for m in messages
    )

"""Each ``Runtime`` owns its observers: two runtimes on two videos in two threads, one output each.

Every output sees only its own runtime's frames (``FrameResult.source`` names the video), a plugin
registered process-wide sees both, and a runtime's plugins never reach the process-wide manager.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

import edgecv
from edgecv.errors import PluginError
from edgecv.runtime.loop import RunConfig, Runtime
from edgecv.runtime.results import FrameResult

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

"""``Runtime.install_signal_handlers``: the handlers take no lock, so a signal that lands inside
another handler (or inside any code holding a lock) cannot deadlock the run."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import edgecv
from edgecv.model import Model
from edgecv.runtime.loop import RunConfig, Runtime
from edgecv.runtime.stats import RunStats

Handler = Callable[[int, FrameType | None], Any]


@pytest.fixture(scope="module")
def model(models: Path) -> Model:
    return edgecv.load(str(models / "yolo11n_320_fp32_dequant.onnx"), backend="onnx")


@pytest.fixture
def handlers(model: Model, assets: Path) -> Iterator[tuple[Runtime, list[RunStats]]]:
    """A runtime with its handlers installed (the previous ones restored afterwards)."""
    kept = {
        sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)
    }
    reports: list[RunStats] = []
    runtime = Runtime(
        model, assets / "videos" / "pedestrians_vtest_30s.mp4", RunConfig(max_frames=4), thermal=False
    )
    try:
        runtime.install_signal_handlers(reports.append)
        yield runtime, reports
    finally:
        runtime.close()
        for sig, previous in kept.items():
            signal.signal(sig, previous)


def lock_calls(handler: Handler, signum: int) -> list[str]:
    """The lock operations (C calls on ``_thread`` locks) that calling ``handler`` makes."""
    seen: list[str] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call" and type(getattr(arg, "__self__", None)).__module__ == "_thread":
            seen.append(f"{type(arg.__self__).__name__}.{arg.__name__}")

    sys.setprofile(profile)
    try:
        handler(signum, None)
    except KeyboardInterrupt:
        pass
    finally:
        sys.setprofile(None)
    return seen


def test_the_handlers_take_no_lock(handlers: tuple[Runtime, list[RunStats]]) -> None:
    # A handler runs between two bytecodes of the code it interrupts. The first Ctrl-C's handler
    # used to call threading.Event.set(); a second Ctrl-C landing inside it (holding the Event's
    # lock) ran the handler again, which waited for that lock forever.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        handler = signal.getsignal(sig)
        assert callable(handler)
        assert lock_calls(handler, sig) == [], signal.Signals(sig).name


def test_ctrl_c_stops_after_the_frame_and_a_second_one_interrupts(
    handlers: tuple[Runtime, list[RunStats]],
) -> None:
    runtime, _ = handlers
    handler = signal.getsignal(signal.SIGINT)
    assert callable(handler)
    handler(signal.SIGINT, None)
    assert runtime.stopping
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGINT, None)
    assert list(runtime.results()) == []  # asked to stop before its first frame: no frame runs


def test_sigusr1_reports_at_the_next_turn_of_the_loop(handlers: tuple[Runtime, list[RunStats]]) -> None:
    runtime, reports = handlers
    handler = signal.getsignal(signal.SIGUSR1)
    assert callable(handler)
    handler(signal.SIGUSR1, None)
    assert reports == []  # not from inside the handler
    results = runtime.results()
    next(results)
    assert reports == [runtime.stats]
    assert len(list(results)) == 3 and len(reports) == 1

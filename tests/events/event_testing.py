"""Helpers shared by the sync tests (not a test module): sample events, polling, a free port."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from edgecv.events.model import Event


def make_events(count: int, start: int = 0) -> list[Event]:
    """``count`` distinct events with fresh ids, numbered from ``start``."""
    return [
        Event.new(
            time=1_700_000_000.0 + i / 10,
            kind="detection",
            model="yolov8n",
            source="cam0",
            frame=i,
            label="person",
            class_id=0,
            score=0.5 + (i % 50) / 100,
            box=(i, 2.5, i + 10.25, 40.0),
            track_id=i % 7 or None,
        )
        for i in range(start, start + count)
    ]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    """A port nothing listens on (bound, read and released): for servers, or for 'connection refused'."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

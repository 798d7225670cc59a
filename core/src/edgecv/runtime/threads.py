"""Bounded waits at shutdown that a second Ctrl-C cannot cut short.

A thread still inside a native runtime (onnxruntime, FFmpeg) when the interpreter shuts down can
abort the process ("terminate called without an active exception", SIGABRT). So the runtime waits
a bounded time for its threads at the end of a run, and a ``KeyboardInterrupt`` that arrives during
that wait is raised only once the wait is over.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


def wait_through_interrupts(done: Callable[[float], bool], timeout_s: float) -> bool:
    """Call ``done(seconds_left)`` until it returns True or ``timeout_s`` have passed; whether it did.

    A ``KeyboardInterrupt`` raised meanwhile does not end the wait early: it is raised afterwards.
    """
    deadline = time.monotonic() + timeout_s
    interrupted = finished = False
    while True:
        left = max(deadline - time.monotonic(), 0.0)
        try:
            finished = done(left)
        except KeyboardInterrupt:
            interrupted = True
            continue
        if finished or left <= 0:
            break
    if interrupted:
        raise KeyboardInterrupt
    return finished


def join_thread(thread: threading.Thread, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``thread`` to end (through Ctrl-C); whether it ended."""

    def ended(left: float) -> bool:
        thread.join(left)
        return not thread.is_alive()

    return wait_through_interrupts(ended, timeout_s)


def wait_futures(futures: Sequence[concurrent.futures.Future[Any]], timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``futures`` to finish (through Ctrl-C); whether they all did."""
    return wait_through_interrupts(
        lambda left: not concurrent.futures.wait(futures, timeout=left).not_done, timeout_s
    )

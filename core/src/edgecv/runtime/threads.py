"""Bounded waits at shutdown that a second Ctrl-C cannot cut short.

A thread still inside a native runtime (onnxruntime, FFmpeg) when the interpreter shuts down can
abort the process ("terminate called without an active exception", SIGABRT). So the runtime waits
a bounded time for its threads at the end of a run, and Ctrl-C during that wait takes effect only
once the wait is over.

Ctrl-C must not raise *inside* the wait: a ``KeyboardInterrupt`` that cuts into ``Thread.join`` (or
``is_alive``) on Python 3.11 releases the lock the running thread holds and marks it ended, so the
wait returns at once while the thread is still inside the runtime. On the main thread (the only
one Python runs signal handlers in), SIGINT's handler is replaced for the wait by one that only
notes the signal, and the replaced handler runs once the wait is over.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT during the block is noted, then handed to the handler it replaced at the end."""
    previous = signal.getsignal(signal.SIGINT)
    noted: list[int] = []
    held = threading.current_thread() is threading.main_thread() and previous is not None
    if held:  # elsewhere no handler runs; None: one set outside Python, which cannot be restored
        try:
            signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
        except ValueError:  # not the main interpreter: no Python signal handlers there
            held = False
    try:
        yield
    finally:
        if held:
            signal.signal(signal.SIGINT, previous)
    if noted:
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def wait_through_interrupts(done: Callable[[float], bool], timeout_s: float) -> bool:
    """Call ``done(seconds_left)`` until it returns True or ``timeout_s`` have passed; whether it did.

    Ctrl-C meanwhile does not end the wait early: SIGINT's handler runs afterwards (by default it
    raises ``KeyboardInterrupt``), as does a ``KeyboardInterrupt`` some other handler raised.
    """
    deadline = time.monotonic() + timeout_s
    interrupted = finished = False
    with _sigint_held():
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

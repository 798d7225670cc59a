"""An asynchronous session for tests: a real session behind a queue, as an accelerator's would be.

``QueuedSession(inner)`` gives any ``Session`` the ``AsyncSession.submit`` of a device with its
own queue (Hailo, TensorRT streams, Edge TPU), computing real outputs with ``inner``. Tests hold
the queue (``gate``), make a frame fail (``fail_next``) or never finish (``stall_next``), and read
how many frames were in flight at once (``max_outstanding``). ``queued_backend`` registers it as a
backend over an installed one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy.typing as npt

from edgecv import plugins
from edgecv.backends import Backend, Outputs, Session
from edgecv.hookspecs import hookimpl
from edgecv.spec import SessionSpec


class QueuedSession:
    """``inner`` behind a queue of ``workers`` threads; ``gate`` starts open."""

    def __init__(self, inner: Session, workers: int = 1) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.submitted = 0
        self.max_outstanding = 0
        self.fail_next = False
        self.stall_next = False
        self._outstanding = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="queued-session")

    @property
    def spec(self) -> SessionSpec:
        return self.inner.spec

    def run(self, tensor: npt.NDArray[Any]) -> Outputs:
        return self.inner.run(tensor)

    @property
    def bare(self) -> Callable[[npt.NDArray[Any]], object]:
        return self.inner.bare

    def submit(self, tensor: npt.NDArray[Any]) -> Future[Outputs]:
        with self._lock:
            self.submitted += 1
            self._outstanding += 1
            self.max_outstanding = max(self.max_outstanding, self._outstanding)
            fail, self.fail_next = self.fail_next, False
            stall, self.stall_next = self.stall_next, False
        if stall:
            return Future()  # never resolves, like a device that lost the frame silently

        def job() -> Outputs:
            try:
                self.gate.wait()
                if fail:
                    raise RuntimeError("the device lost the frame")
                return self.inner.run(tensor)
            finally:
                with self._lock:
                    self._outstanding -= 1

        return self._pool.submit(job)

    def close(self) -> None:
        self.gate.set()
        self._pool.shutdown(wait=True)
        self.inner.close()


class QueuedBackend:
    """A plugin registering ``name``: the installed backend ``over``'s sessions behind a queue."""

    def __init__(self, name: str = "queued", over: str = "onnx", workers: int = 1) -> None:
        self.name, self.over, self.workers = name, over, workers
        self.sessions: list[QueuedSession] = []

    def open(self, path: Path, options: Mapping[str, Any]) -> Session:
        inner = next(b for b in plugins.backends() if b.name == self.over)
        session = QueuedSession(inner.open(path, options), self.workers)
        self.sessions.append(session)
        return session

    @hookimpl
    def edgecv_register_backends(self, register: Callable[[Backend], None]) -> None:
        register(Backend(name=self.name, open=self.open, priority=-1, accepts=lambda path: False))

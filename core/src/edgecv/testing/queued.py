"""An asynchronous session for tests: a real session behind a queue, as an accelerator's would be.

``QueuedSession(inner)`` gives any ``Session`` the ``AsyncSession.submit`` of a device with its
own queue (Hailo, TensorRT streams, Edge TPU), computing real outputs with ``inner``. Tests hold
the queue (``gate``), make a frame fail (``fail_next``) or never finish (``stall_next``), and read
how many frames were in flight at once (``max_outstanding``); ``depth`` is what it tells the core
to keep in flight. ``QueuedDeviceSession`` adds what an accelerator's session describes
(``DeviceSession``): a device record and a chip temperature the test sets. ``QueuedBackend``
registers either as a backend over an installed one.
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
    """``inner`` behind a queue of ``workers`` threads; ``gate`` starts open. ``depth`` (default:
    twice the workers, as a device's queue) is the frames worth keeping in flight."""

    def __init__(self, inner: Session, workers: int = 1, depth: int | None = None) -> None:
        self.inner = inner
        self.depth = 2 * workers if depth is None else depth
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


class QueuedDeviceSession(QueuedSession):
    """A ``QueuedSession`` on a pretend accelerator: ``device()`` returns ``described``;
    ``temperature()`` returns ``celsius``, or raises it when it is an exception."""

    def __init__(
        self,
        inner: Session,
        workers: int = 1,
        depth: int | None = None,
        described: Mapping[str, Any] | None = None,
        celsius: float | Exception | None = 50.0,
    ) -> None:
        super().__init__(inner, workers, depth)
        self.described: Mapping[str, Any] = described or {"device": "Queued-8L", "firmware": "1.0.0"}
        self.celsius = celsius
        self.temperature_reads = 0

    def device(self) -> Mapping[str, Any]:
        return self.described

    def temperature(self) -> float | None:
        self.temperature_reads += 1
        if isinstance(self.celsius, Exception):
            raise self.celsius
        return self.celsius


class QueuedBackend:
    """A plugin registering ``name``: the installed backend ``over``'s sessions behind a queue
    (``QueuedDeviceSession``s with ``device=True``). ``describe`` becomes the backend's."""

    def __init__(
        self,
        name: str = "queued",
        over: str = "onnx",
        workers: int = 1,
        depth: int | None = None,
        device: bool = False,
        describe: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.name, self.over, self.workers, self.depth = name, over, workers, depth
        self.device, self.describe = device, describe
        self.sessions: list[QueuedSession] = []

    def open(self, path: Path, options: Mapping[str, Any]) -> Session:
        inner = next(b for b in plugins.backends() if b.name == self.over).open(path, options)
        session = (
            QueuedDeviceSession(inner, self.workers, self.depth)
            if self.device
            else QueuedSession(inner, self.workers, self.depth)
        )
        self.sessions.append(session)
        return session

    @hookimpl
    def edgecv_register_backends(self, register: Callable[[Backend], None]) -> None:
        register(
            Backend(
                name=self.name,
                open=self.open,
                priority=-1,
                accepts=lambda path: False,
                describe=self.describe,
            )
        )

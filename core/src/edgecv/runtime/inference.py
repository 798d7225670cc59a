"""The inference stage of ``edgecv run``: the session runs in its own thread, so the loop's thread
preprocesses the next frame, and postprocesses, tracks and outputs the previous one, meanwhile.

The loop calls ``prepare`` (preprocess) and ``finish`` (postprocess) itself and hands the worker a
``Prepared`` frame; the worker runs only ``Model.infer`` on it, in order. The runtimes (ONNX
Runtime, ncnn, LiteRT) and OpenCV release the GIL, so the stages overlap on a multi-core CPU.

A Python thread cannot be killed. When inference stalls, the runtime abandons the worker (its late
result goes to a future nobody reads), starts a new one on the same model and hands it the frames
the stuck one had not started (``close``).
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.backends import Outputs
from edgecv.detections import Detections
from edgecv.model import Model
from edgecv.postprocess import PostprocessOptions
from edgecv.preprocess import Lease, LetterboxInfo
from edgecv.runtime.threads import join_thread


@attrs.frozen
class Prepared:
    """A frame the loop preprocessed, on its way to the session."""

    image: npt.NDArray[np.uint8]
    tensor: npt.NDArray[Any]
    letterbox: LetterboxInfo
    lease: Lease
    """The tensor's buffer: released once the session has run on it."""
    options: PostprocessOptions | None
    source: str | None
    preprocess_s: float


@attrs.frozen
class Inferred:
    """A frame the session ran: its raw outputs, waiting for ``finish``."""

    prepared: Prepared
    outputs: Outputs
    infer_s: float


Job = tuple[Prepared, "Future[Inferred]"]


def prepare(
    model: Model, image: npt.NDArray[np.uint8], options: PostprocessOptions | None, source: str | None
) -> Prepared:
    """Preprocess ``image`` (the ``edgecv_preprocess`` hook) into a reused buffer, timed.

    The buffer is the frame's until the inference thread releases its lease after the session
    ran: the session may still read frame N's tensor while the loop prepares frame N+1's, so
    each frame in flight has a buffer of its own.
    """
    start = time.perf_counter()
    tensor, letterbox, lease = model.preprocess_leased(image)
    return Prepared(image, tensor, letterbox, lease, options, source, time.perf_counter() - start)


def finish(model: Model, inferred: Inferred) -> Detections:
    """Postprocess an inferred frame into what ``Model.predict`` would have returned.

    ``Model._finish`` times infer from ``preprocessed`` to its own start: the stages' durations
    are laid back to back before now, so the time a frame waited between stages counts in none.
    """
    prepared = inferred.prepared
    preprocessed = time.perf_counter() - inferred.infer_s
    return model.finish(
        prepared.image,
        inferred.outputs,
        prepared.letterbox,
        prepared.options,
        prepared.source,
        preprocessed - prepared.preprocess_s,
        preprocessed,
    )


class InferenceWorker:
    """One daemon thread that runs ``model.infer`` on the frames submitted to it, in order."""

    def __init__(self, model: Model, name: str = "edgecv-inference") -> None:
        self.model = model
        self._jobs: collections.deque[Job] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, prepared: Prepared) -> Future[Inferred]:
        """Queue ``prepared``; the future resolves to its outputs, or to the session's exception."""
        future: Future[Inferred] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("this inference worker is closed")
            self._jobs.append((prepared, future))
            self._ready.notify()
        return future

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._jobs and not self._closed:
                    self._ready.wait()
                if self._closed:
                    return
                prepared, future = self._jobs.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            start = time.perf_counter()
            try:
                outputs = self.model.infer(prepared.tensor)
            except BaseException as exc:  # handed to the loop, which counts failures
                prepared.lease.release()
                future.set_exception(exc)
                continue
            infer_s = time.perf_counter() - start
            # The session is done with the tensor (its outputs are arrays of their own): the buffer
            # goes back before the loop hears of it, for the frame it prepares next.
            prepared.lease.release()
            future.set_result(Inferred(prepared, outputs, infer_s))

    def join(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the thread to end (after ``close``); True when it has."""
        return join_thread(self._thread, timeout_s)

    def close(self) -> list[Job]:
        """Let the thread exit after its current frame; never blocks (it may be stuck).

        Returns the frames it had not started, in order: their futures never resolve, and the
        caller may submit them to another worker (a frame left unsubmitted keeps its buffer from
        reuse; the garbage collector frees it).
        """
        with self._ready:
            self._closed = True
            left = list(self._jobs)
            self._jobs.clear()
            self._ready.notify_all()
        return left

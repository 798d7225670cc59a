"""The inference worker: runs the model in its own thread so that a hung runtime can be detected.

A Python thread cannot be killed. When inference stalls, the runtime abandons the worker (its
late result goes to a queue nobody reads) and starts a new one on the same model.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv.detections import Detections
from edgecv.model import Model
from edgecv.postprocess import PostprocessOptions
from edgecv.runtime.threads import join_thread

Job = tuple[npt.NDArray[np.uint8], str | None, PostprocessOptions | None]


class InferenceStalled(Exception):
    """The model did not answer within the watchdog's timeout."""


class InferenceWorker:
    """One daemon thread that runs ``model.predict`` on the frames handed to it, one at a time."""

    def __init__(self, model: Model, name: str = "edgecv-inference") -> None:
        self.model = model
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=1)
        self._results: queue.Queue[tuple[Detections | None, BaseException | None]] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            image, source, options = job
            try:
                self._results.put((self.model.predict(image, options, source=source), None))
            except BaseException as exc:  # handed to the caller, who decides to restart
                self._results.put((None, exc))

    def predict(
        self,
        image: npt.NDArray[np.uint8],
        source: str | None,
        timeout_s: float,
        options: PostprocessOptions | None = None,
    ) -> Detections:
        """Detections for ``image``; re-raises the model's exception; ``InferenceStalled`` on timeout."""
        self._jobs.put((image, source, options))
        try:
            detections, error = self._results.get(timeout=timeout_s)
        except queue.Empty:
            raise InferenceStalled(f"inference gave no result in {timeout_s:g} s") from None
        if error is not None:
            raise error
        assert detections is not None
        return detections

    def join(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the thread to end (after ``close``); True when it has."""
        return join_thread(self._thread, timeout_s)

    def close(self, *_: Any) -> None:
        """Ask the thread to exit after its current job; never blocks (it may be stuck)."""
        # Full: stuck with a job; the thread is a daemon and is abandoned.
        with contextlib.suppress(queue.Full):
            self._jobs.put_nowait(None)

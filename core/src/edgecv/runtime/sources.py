"""Frame sources for ``edgecv run``: video files, cameras, network streams and GStreamer pipelines.

A capture thread reads the device or decoder so that capture overlaps inference:

- live sources (cameras, ``rtsp://``/``http(s)://``/``rtmp://`` URLs, GStreamer pipelines) keep only
  the latest frame; a frame replaced before the consumer took it counts in ``stats.dropped``. A read
  failure reconnects with exponential backoff;
- files are read in order through a small bounded buffer (no drops) and end with ``EndOfStream``;
  ``realtime=True`` paces a file at its frame rate and then behaves like a live source.

``restart()`` (the loop's watchdog) abandons a capture thread stuck inside the driver: each thread
belongs to a generation, and frames from an abandoned generation are ignored. OpenCV's capture
objects are not safe to release from another thread while a read is in progress, so an abandoned
thread releases its own capture if the read ever returns.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, Protocol, cast

import attrs
import cv2
import numpy as np
import numpy.typing as npt

from edgecv.errors import ConfigError, EdgecvError
from edgecv.native_output import stderr_silenced
from edgecv.runtime.threads import join_thread
from edgecv.urls import redact_within

log = logging.getLogger(__name__)

SourceKind = Literal["file", "camera", "stream", "gstreamer"]

FILE_BUFFER = 4  # frames decoded ahead of the consumer: enough to overlap decode with inference
_JOIN_TIMEOUT_S = 2.0  # close() waits this long for the capture thread; a stuck one is left (daemon)
_TICK_S = 0.25  # longest uninterrupted wait of a capture thread, so last_progress stays fresh
_JITTER = 0.1  # backoff delays are lengthened by up to 10% so that many cameras do not retry in step
_STREAM = re.compile(r"^(rtsps?|rtmps?|https?)://", re.IGNORECASE)

_CAMERA_HINT = (
    "List cameras with `ls /dev/video*` (or v4l2-ctl --list-devices); check permissions (video group)."
)
_FILE_HINT = "Check it plays with ffprobe/ffplay; re-encode to H.264 mp4."
_STREAM_HINT = "Check the URL, the credentials and the network; test it with `ffplay URL`."
_NO_GSTREAMER = "this OpenCV is built without GStreamer"
_GST_HINT = (
    "Test the pipeline with gst-launch-1.0 (with fakesink in place of appsink); it must end in appsink."
)


@attrs.frozen(eq=False)  # compared by identity: the image is an array
class Frame:
    index: int
    """0-based number of the frame as the source produced it (dropped frames are counted too)."""
    image: npt.NDArray[np.uint8]
    """BGR, (H, W, 3)."""
    captured_at: float
    """``time.monotonic()`` when it was read (for a paced file: when it was due)."""
    timestamp: float
    """``time.time()`` at the same moment, for event logs."""


@attrs.define
class SourceStats:
    read: int = 0  # frames read from the capture (delivered + dropped + the one waiting)
    dropped: int = 0  # frames replaced by a newer one before the consumer took them
    reconnects: int = 0  # successful reopenings after a failed read
    restarts: int = 0  # restart() calls (watchdog)
    last_error: str | None = None


class EndOfStream(Exception):
    """``read()`` past the last frame of a file (or of a live source that may not reconnect)."""


class SourceError(EdgecvError):
    """A video source cannot be opened."""


class Capture(Protocol):
    """What ``cv2.VideoCapture`` offers; tests pass fakes through ``open_source(opener=...)``."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, npt.NDArray[np.uint8] | None]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


Opener = Callable[[str | int], Capture]


def opencv_path(path: str | os.PathLike[str]) -> str:
    """``path`` as OpenCV's video calls must get it: as bytes, typed ``str`` for OpenCV's stubs.

    ``cv2.VideoCapture`` and ``cv2.VideoWriter`` segfault on a ``str`` path that is not valid UTF-8
    (a surrogate-escaped file name); they take the file system's own bytes correctly.
    """
    return cast(str, os.fsencode(path))


def quiet_ffmpeg() -> None:
    """FFmpeg's own log off, so a damaged video reaches users as edgecv's one-line warnings and
    errors rather than FFmpeg's lines on stderr.

    OpenCV reads ``OPENCV_FFMPEG_LOGLEVEL`` once, when FFmpeg is first used: call this before any
    capture or writer. A level the user set wins, and ``--debug`` keeps FFmpeg's messages.
    """
    if not log.isEnabledFor(logging.DEBUG):
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def open_capture(target: str | int) -> Capture:
    """A ``cv2.VideoCapture`` for ``target``; GStreamer pipelines (``... ! appsink``) use CAP_GSTREAMER."""
    quiet_ffmpeg()
    if isinstance(target, str) and " ! " in target:
        capture = cv2.VideoCapture(target, cv2.CAP_GSTREAMER)
    elif isinstance(target, str) and target.startswith("/dev/video") and sys.platform.startswith("linux"):
        capture = cv2.VideoCapture(opencv_path(target), cv2.CAP_V4L2)
    elif isinstance(target, str):
        capture = cv2.VideoCapture(opencv_path(target))
    else:
        capture = cv2.VideoCapture(target)
    return cast(Capture, capture)


def display_name(spec: str | int) -> str:
    """How a source is named in logs: camera indexes spelled out, URL credentials hidden."""
    if isinstance(spec, int):
        return f"camera {spec}"
    return redact_within(spec)


def source_kind(spec: str | int) -> SourceKind:
    if isinstance(spec, int) or spec.strip().isdigit() or spec.startswith("/dev/video"):
        return "camera"
    if " ! " in spec:
        return "gstreamer"
    if _STREAM.match(spec):
        return "stream"
    return "file"


_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_level = 0


@contextlib.contextmanager
def _opencv_silent() -> Iterator[None]:
    """OpenCV's own log off (its ``[ WARN:0@...]`` lines) while any thread opens a capture."""
    global _quiet_depth, _saved_level
    with _quiet_lock:
        if _quiet_depth == 0:
            _saved_level = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                cv2.utils.logging.setLogLevel(_saved_level)


@attrs.define(eq=False)
class _Worker:
    """One capture thread and its generation; ``cancelled`` is set when it is abandoned or closed."""

    generation: int
    capture: Capture | None
    backoff_s: float
    cancelled: threading.Event = attrs.Factory(threading.Event)
    thread: threading.Thread | None = None


class FrameSource:
    """Frames from one file, camera, stream or pipeline, read ahead by a daemon capture thread.

    ``read(timeout)`` returns the next frame (live: the latest one newer than the last returned),
    ``None`` when none came within ``timeout`` seconds, and raises ``EndOfStream`` at the end of a file.
    """

    def __init__(
        self,
        target: str | int,
        *,
        kind: SourceKind,
        realtime: bool = False,
        reconnect: bool = True,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        opener: Opener | None = None,
    ) -> None:
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ConfigError(
                f"Reconnect backoff needs 0 < initial <= max, got {backoff_initial_s} and {backoff_max_s}",
                "Pass positive seconds, the initial delay no longer than the maximum.",
            )
        self.target: str | int = int(target) if kind == "camera" and _is_index(target) else target
        self.kind: SourceKind = kind
        self.name = display_name(target)
        self.live = kind != "file"
        self.realtime = realtime and not self.live  # a file paced at its frame rate
        self.latest_only = self.live or self.realtime  # keep the latest frame only, count drops
        self.reconnect = reconnect
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.fps: float | None = None
        self.stats = SourceStats()
        self._opener = opener
        self._cond = threading.Condition()
        self._worker: _Worker | None = None
        self._latest: Frame | None = None
        self._taken = False
        self._buffer: deque[Frame] = deque()
        self._next_index = 0
        self._progress = time.monotonic()
        self._ended = False
        self._closed = False

    def __repr__(self) -> str:
        return f"FrameSource({self.name!r}, kind={self.kind!r})"

    # --- consumer side --------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._worker is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        """Open the source and read its first frame (``SourceError`` if either fails), then start reading."""
        if self._worker is not None or self._closed:
            raise RuntimeError(f"{self.name} is already started or closed")
        if self.kind == "file" and not Path(str(self.target)).is_file():
            raise SourceError(f"Video file not found: {self.target}", "Check the path.")
        log.info("opening %s", self.name)
        with stderr_silenced(), _opencv_silent():  # FFmpeg/GStreamer print past OpenCV's log
            capture, detail = self._open()
            if capture is None:
                raise self._open_error(detail, opened=False)
            ok, image, detail = _read(capture)
        if not ok or image is None:
            _release(capture)
            raise self._open_error(detail, opened=True)
        self.fps = _fps(capture)
        worker = _Worker(0, capture, self.backoff_initial_s)
        with self._cond:
            self._worker = worker
            self._publish(worker, image, time.monotonic(), time.time())
        if self.realtime and self.fps is None:
            log.warning("%s: frame rate unknown, playing it as fast as it decodes", self.name)
        self._spawn(worker)

    def read(self, timeout: float) -> Frame | None:
        """The next frame, or ``None`` after ``timeout`` seconds without one; ``EndOfStream`` at the end."""
        if self._worker is None:
            raise RuntimeError(f"start() {self.name} before reading it")
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.latest_only and self._latest is not None and not self._taken:
                    self._taken = True
                    return self._latest
                if self._buffer:
                    frame = self._buffer.popleft()
                    self._cond.notify_all()  # room for the capture thread
                    return frame
                if self._ended or self._closed:
                    raise EndOfStream(self.name)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def restart(self, reason: str) -> None:
        """Abandon the capture thread (it may be stuck in the driver) and open the source again.

        Returns at once: the new thread opens the source, retrying with backoff like a reconnect.
        A file resumes at the next frame. Nothing happens after ``close()`` or the end of a file.
        """
        with self._cond:
            old = self._worker
            if old is None or self._closed or self._ended:
                return
            old.cancelled.set()
            self.stats.restarts += 1
            self.stats.last_error = f"restarted: {reason}"
            worker = _Worker(old.generation + 1, None, self.backoff_initial_s)
            self._worker = worker
            self._progress = time.monotonic()  # the new capture gets a full stall period to open
        log.warning("%s: restarting the capture (%s)", self.name, reason)
        self._spawn(worker)

    def last_progress(self) -> float:
        """``time.monotonic()`` when the capture thread last showed it is not stuck in the driver.

        Advanced on every frame read, and while the thread waits on purpose (reconnect backoff, a
        full file buffer, realtime pacing); a finished or closed source never looks stalled.
        """
        with self._cond:
            if self._ended or self._closed:
                return time.monotonic()
            return self._progress

    def close(self) -> None:
        """Stop the capture thread; it releases its capture as it exits. Safe to call twice."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
            if worker is not None:
                worker.cancelled.set()
            self._cond.notify_all()
        thread = worker.thread if worker is not None else None
        if (
            thread is not None
            and thread is not threading.current_thread()
            and not join_thread(thread, _JOIN_TIMEOUT_S)
        ):
            log.warning("%s: capture thread still blocked in the driver; leaving it", self.name)

    def __enter__(self) -> FrameSource:
        """Start it (unless started already); leaving the ``with`` closes it."""
        if not self.started:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- capture thread -------------------------------------------------------------------------

    def _spawn(self, worker: _Worker) -> None:
        worker.thread = threading.Thread(
            target=self._run, args=(worker,), name=f"edgecv-capture-{worker.generation}", daemon=True
        )
        worker.thread.start()

    def _run(self, worker: _Worker) -> None:
        capture = worker.capture
        try:
            if capture is None:  # after restart(): open again, at the frame the old thread stopped
                capture = self._reopen(worker, "restart", immediate=True)
                if capture is None:
                    return
            due = time.monotonic()  # about when the previous frame was handed over
            while not worker.cancelled.is_set():
                ok, image, detail = _read(capture)
                now, wall = time.monotonic(), time.time()
                if worker.cancelled.is_set():
                    return
                if not ok or image is None:
                    capture = self._read_failed(worker, capture, detail or "read failed")
                    if capture is None:
                        return
                    continue
                worker.backoff_s = self.backoff_initial_s  # reading again: the next outage starts small
                if self.realtime and self.fps is not None:
                    due = max(due + 1.0 / self.fps, now)
                    if self._sleep(worker, due - now):
                        return
                    now, wall = time.monotonic(), time.time()
                with self._cond:
                    if not self._publish(worker, image, now, wall):
                        return
        except Exception:  # a bug or a driver error must not vanish silently in a daemon thread
            log.exception("%s: capture thread failed", self.name)
            self._end(worker, "capture thread failed")
        finally:
            if capture is not None:
                _release(capture)

    def _publish(self, worker: _Worker, image: npt.NDArray[np.uint8], now: float, wall: float) -> bool:
        """Hand a frame to the consumer (the caller holds the lock); False once ``worker`` is abandoned."""
        if not self.latest_only:
            while len(self._buffer) >= FILE_BUFFER and self._is_current(worker):
                self._progress = time.monotonic()  # waiting for the consumer is not a stall
                self._cond.wait(_TICK_S)
        if not self._is_current(worker):
            return False
        frame = Frame(self._next_index, image, now, wall)
        self._next_index += 1
        self.stats.read += 1
        self._progress = max(self._progress, now)
        if self.latest_only:
            if self._latest is not None and not self._taken:
                self.stats.dropped += 1
            self._latest, self._taken = frame, False
        else:
            self._buffer.append(frame)
        self._cond.notify_all()
        return True

    def _is_current(self, worker: _Worker) -> bool:
        return self._worker is worker and not worker.cancelled.is_set() and not self._closed

    def _read_failed(self, worker: _Worker, capture: Capture, detail: str) -> Capture | None:
        """The stream ends for files; a live source reconnects (or ends, with reconnect off)."""
        if not self.live:
            total = _frame_count(capture)
            if total is not None and self._next_index < total:
                message = f"decoding stopped at frame {self._next_index} of {total} ({detail})"
                log.warning("%s: %s; ending the stream", self.name, message)
                self._end(worker, message)
            else:
                log.info("%s: end of file after %d frames", self.name, self._next_index)
                self._end(worker, None)
            return None
        if not self.reconnect:
            log.warning("%s: %s; reconnect is off, ending the stream", self.name, detail)
            self._end(worker, detail)
            return None
        _release(capture)
        reason = f"disconnected ({detail})"
        with self._cond:
            if self._is_current(worker):
                self.stats.last_error = reason
        return self._reopen(worker, reason)

    def _reopen(self, worker: _Worker, reason: str, *, immediate: bool = False) -> Capture | None:
        """Open the source again, waiting with exponential backoff between attempts.

        Returns ``None`` when ``worker`` is abandoned meanwhile, or for a file that fails to reopen.
        """
        while True:
            if not immediate:
                delay = worker.backoff_s * (1.0 + _JITTER * random.random())
                log.warning("%s: %s; reconnecting in %.1f s", self.name, reason, delay)
                if self._sleep(worker, delay):
                    return None
                worker.backoff_s = min(worker.backoff_s * 2.0, self.backoff_max_s)
            immediate = False
            with _opencv_silent():
                capture, detail = self._open()
            if worker.cancelled.is_set():
                if capture is not None:
                    _release(capture)
                return None
            if capture is not None:
                return self._reopened(worker, capture, reason)
            reason = f"cannot reopen ({detail or 'OpenCV cannot open it'})"
            with self._cond:
                if self._is_current(worker):
                    self.stats.last_error = reason
            if not self.live:
                log.error("%s: %s; ending the stream", self.name, reason)
                self._end(worker, reason)
                return None

    def _reopened(self, worker: _Worker, capture: Capture, reason: str) -> Capture:
        if not self.live:
            _seek(capture, self._next_index)
        with self._cond:
            if self._is_current(worker) and reason != "restart":
                self.stats.reconnects += 1
            self._progress = time.monotonic()
        log.warning("%s: %s", self.name, "reopened" if reason == "restart" else "reconnected")
        return capture

    def _sleep(self, worker: _Worker, seconds: float) -> bool:
        """Wait ``seconds``, keeping last_progress fresh; True when ``worker`` is abandoned meanwhile."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if worker.cancelled.wait(min(remaining, _TICK_S)):
                return True
            with self._cond:
                if self._is_current(worker):
                    self._progress = time.monotonic()
        return worker.cancelled.is_set()

    def _end(self, worker: _Worker, error: str | None) -> None:
        with self._cond:
            if self._is_current(worker):
                self._ended = True
                if error is not None:
                    self.stats.last_error = error
                self._cond.notify_all()

    # --- opening --------------------------------------------------------------------------------

    def _open(self) -> tuple[Capture | None, str | None]:
        """An opened capture, or ``None`` and why (the opener's exception, if it raised one)."""
        if self._opener is None and self.kind == "gstreamer" and not _has_gstreamer():
            return None, _NO_GSTREAMER
        opener = self._opener or open_capture
        try:
            capture = opener(self.target)
            opened = capture.isOpened()
        except Exception as exc:  # cv2.error, or whatever a custom opener raises
            return None, f"{type(exc).__name__}: {exc}"
        if not opened:
            _release(capture)
            return None, None
        if self.live:
            _set_buffer_size(capture)
        return capture, None

    def _open_error(self, detail: str | None, *, opened: bool) -> SourceError:
        """The one-line error for a failed first open (``opened``: it opened but gave no frame)."""
        if self.kind == "file":
            default = "no frame could be decoded" if opened else "OpenCV cannot open it"
            return SourceError(f"Cannot decode video {self.target}: {detail or default}", _FILE_HINT)
        what = "opened but gave no frame" if opened else "cannot be opened"
        suffix = f" ({detail})" if detail else ""
        if self.kind == "camera":
            if opened:
                return SourceError(
                    f"Camera {self.target} {what}{suffix}",
                    "Check that no other program uses it; list its modes with `v4l2-ctl --list-formats-ext`.",
                )
            return SourceError(f"Camera {self.target} {what}{suffix}", _CAMERA_HINT)
        if self.kind == "stream":
            return SourceError(f"Stream {self.name} {what}{suffix}", _STREAM_HINT)
        if detail == _NO_GSTREAMER:
            return SourceError(
                f"GStreamer pipeline cannot be opened: {_NO_GSTREAMER}",
                "Use an OpenCV built with it (on Jetson, JetPack's python3-opencv, not the pip wheel).",
            )
        return SourceError(f"GStreamer pipeline {what}{suffix}: {self.name}", _GST_HINT)


def open_source(
    spec: str | int,
    *,
    realtime: bool = False,
    reconnect: bool = True,
    backoff_initial_s: float = 0.5,
    backoff_max_s: float = 30.0,
    opener: Opener | None = None,
) -> FrameSource:
    """A source for ``spec``, not yet started: a video file path, a camera index (``0`` or ``"0"``),
    ``/dev/videoN``, an ``rtsp://``/``http(s)://``/``rtmp://`` URL, or a GStreamer pipeline ending in
    ``appsink``. ``opener`` replaces ``cv2.VideoCapture`` (tests, custom drivers).
    """
    kind = source_kind(spec)
    target: str | int = int(spec) if isinstance(spec, str) and kind == "camera" and _is_index(spec) else spec
    return FrameSource(
        target,
        kind=kind,
        realtime=realtime,
        reconnect=reconnect,
        backoff_initial_s=backoff_initial_s,
        backoff_max_s=backoff_max_s,
        opener=opener,
    )


def _is_index(target: str | int) -> bool:
    return isinstance(target, int) or target.strip().isdigit()


def _read(capture: Capture) -> tuple[bool, npt.NDArray[np.uint8] | None, str | None]:
    try:
        ok, image = capture.read()
    except Exception as exc:  # cv2.error from a driver, or a fake's failure
        return False, None, f"{type(exc).__name__}: {exc}"
    return bool(ok), image, None


def _release(capture: Capture) -> None:
    try:
        capture.release()
    except Exception as exc:
        log.debug("releasing a capture failed: %s", exc)


def _fps(capture: Capture) -> float | None:
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    except Exception:
        return None
    return fps if math.isfinite(fps) and 0 < fps < 1000 else None


def _frame_count(capture: Capture) -> int | None:
    try:
        count = float(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    except Exception:
        return None
    return int(count) if math.isfinite(count) and count > 0 else None


def _set_buffer_size(capture: Capture) -> None:
    """One buffered frame where the driver supports it (V4L2, some GStreamer), so frames are fresh."""
    setter = getattr(capture, "set", None)
    if setter is not None:
        with contextlib.suppress(Exception):
            setter(cv2.CAP_PROP_BUFFERSIZE, 1)


def _seek(capture: Capture, index: int) -> None:
    """Position a reopened file at ``index``; decoders that cannot seek are read forward instead."""
    setter = getattr(capture, "set", None)
    with contextlib.suppress(Exception):
        if setter is not None and setter(cv2.CAP_PROP_POS_FRAMES, index):
            return
    for _ in range(index):
        if not _read(capture)[0]:
            return


def _has_gstreamer() -> bool:
    try:
        return bool(cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER))
    except (AttributeError, cv2.error):
        return True  # cannot tell: let the open itself decide

"""Video recordings that survive a crash: what ``edgecv run --save`` writes.

What this OpenCV can do decides the layout (its FFmpeg writer takes no muxer options, so no
fragmented MP4):

- ``.mkv`` (Matroska, MPEG-4 video) and ``.avi`` (MJPG) can be read while they are being written:
  the recording sits under its own name from the first frame, and a kill -9 or a power cut loses
  only what the writer still buffers, up to 256 KiB of encoded video (a few seconds at camera
  resolutions, more for a small, still picture; .avi frames are larger, so it loses fewer);
- ``.mp4`` and ``.mov`` write their index only when closed, so the recording is cut into closed
  segments of ``segment_s`` seconds, ``NAME-0000.mp4``, ``NAME-0001.mp4``, ...: a kill loses the
  segment being written, left as a hidden ``.NAME-000N.mp4.*.part.mp4`` file.

Every file is created under a fresh temporary name in the target's folder and renamed onto its
name, so a symlink planted there is replaced, never written through. Frames of another size (a
stream that changes resolution) are letterboxed into the first frame's size: a writer drops frames
of the wrong size without a word.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edgecv.errors import ConfigError
from edgecv.files import check_output_file, fresh_partial
from edgecv.preprocess import letterbox
from edgecv.runtime.sources import opencv_path, quiet_ffmpeg

log = logging.getLogger(__name__)

SEGMENT_S = 10.0
"""Length of the closed segments an MP4/MOV recording is cut into: at most this much is lost to a kill."""

GROWING = {".mkv": "mp4v", ".avi": "MJPG"}  # suffix -> codec; readable while written
SEGMENTED = {".mp4": "mp4v", ".mov": "mp4v"}  # the index is written at close
SUFFIXES = (*GROWING, *SEGMENTED)


class Recording:
    """Frames written to ``path`` as described above; ``close()`` finishes the last file.

    ``files`` lists the finished (or, for .mkv/.avi, growing) files in order; ``frames`` counts
    the frames written.
    """

    def __init__(self, path: Path, fps: float | None, segment_s: float = SEGMENT_S) -> None:
        suffix = path.suffix.lower()
        if suffix not in SUFFIXES and not path.is_dir():  # a folder: check_output_file says so
            raise ConfigError(
                f"--save {path}: unsupported video type {suffix or '(none)'}",
                "Use .mkv or .avi (playable even after a crash), or .mp4 (closed segments).",
            )
        if not segment_s > 0:
            raise ConfigError(f"Recording segments must last a positive time, got {segment_s}")
        check_output_file(path, "--save", "out.mkv")
        self.path = path
        self.fps = fps if fps and 0 < fps < 1000 else 30.0
        self.growing = suffix in GROWING
        self.segment_s = segment_s
        self.files: list[Path] = []
        self.frames = 0
        self._fourcc = cv2.VideoWriter.fourcc(*(GROWING | SEGMENTED)[suffix])
        self._size: tuple[int, int] | None = None  # (width, height) of the first frame
        self._writer: cv2.VideoWriter | None = None
        self._target = path
        self._partial: Path | None = None  # a segment's temporary name until it is closed
        self._segment_frames = 0
        self._segment_started = 0.0
        self._resized = False

    def write(self, image: npt.NDArray[np.uint8]) -> None:
        if self._size is None:
            self._size = (image.shape[1], image.shape[0])
        if self._writer is not None and self._segment_due():
            self._close_file()
        if self._writer is None:
            self._writer = self._open_file()
        self._writer.write(self._fitted(image))
        self._segment_frames += 1
        self.frames += 1

    def close(self) -> None:
        """Finish the current file; safe to call twice."""
        if self._writer is not None:
            self._close_file()

    def _segment_due(self) -> bool:
        if self.growing:
            return False
        return (
            self._segment_frames >= max(1, round(self.segment_s * self.fps))
            or time.monotonic() - self._segment_started >= self.segment_s  # slower than the source
        )

    def _fitted(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        assert self._size is not None
        width, height = self._size
        if (image.shape[1], image.shape[0]) == (width, height):
            return image
        if not self._resized:
            self._resized = True
            log.warning(
                "%s: the stream changed resolution from %dx%d to %dx%d; "
                "frames are scaled into the recording's %dx%d",
                self.path,
                width,
                height,
                image.shape[1],
                image.shape[0],
                width,
                height,
            )
        return letterbox(image, (height, width), pad_value=0)[0]

    def _open_file(self) -> cv2.VideoWriter:
        assert self._size is not None
        target = (
            self.path
            if self.growing
            else self.path.with_name(f"{self.path.stem}-{len(self.files):04d}{self.path.suffix}")
        )
        try:
            partial = fresh_partial(
                target, suffix=f".part{target.suffix}"
            )  # FFmpeg picks the container from the suffix
        except OSError as exc:
            raise ConfigError(
                f"Cannot write video {target}: {exc.strerror or exc}", "Check that the folder is writable."
            ) from exc
        quiet_ffmpeg()
        writer = cv2.VideoWriter(opencv_path(partial), self._fourcc, self.fps, self._size)
        if not writer.isOpened():
            partial.unlink(missing_ok=True)
            raise ConfigError(
                f"Cannot write video {target}", "Check that the folder is writable and has free space."
            )
        self._target, self._segment_frames, self._segment_started = target, 0, time.monotonic()
        if self.growing:  # readable while written: under its own name from the first frame
            os.replace(partial, target)
            self.files.append(target)
        else:
            self._partial = partial
        return writer

    def _close_file(self) -> None:
        assert self._writer is not None
        writer, self._writer = self._writer, None
        writer.release()
        if self._partial is not None:
            partial, self._partial = self._partial, None
            os.replace(partial, self._target)
            self.files.append(self._target)

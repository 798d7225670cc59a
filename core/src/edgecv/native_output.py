"""What C and C++ libraries print straight to file descriptor 2, past Python's ``sys.stderr``.

FFmpeg, ncnn, LiteRT and TensorFlow write there; edgecv's errors are one line, so each caller
decides what happens to that text: dropped, quoted in an error, filtered, or kept in a log.
The redirection is process-wide (other threads' stderr goes along): keep the blocks short.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def stderr_redirected(fd: int) -> Iterator[None]:
    """Point file descriptor 2 at ``fd`` for the block; unchanged where there is no fd 2 to save."""
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    os.dup2(fd, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Drop what native code writes to stderr during the block."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with stderr_redirected(devnull):
            yield
    finally:
        os.close(devnull)


@contextlib.contextmanager
def stderr_captured() -> Iterator[list[str]]:
    """The non-empty lines native code writes to stderr during the block (the list fills on exit)."""
    lines: list[str] = []
    with tempfile.TemporaryFile() as sink:
        try:
            with stderr_redirected(sink.fileno()):
                yield lines
        finally:
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            lines.extend(line.strip() for line in text.splitlines() if line.strip())

"""The TFLite export's progress bar gets through the converter's held stderr, its chatter does not.

The export sends file descriptor 2 to a log while TensorFlow runs; the bar (drawn by
``edgecv.progress.terminal_progress`` on ``sys.stderr``) must still reach the terminal. A child
process stands in for the converter: it draws a two-step stage and writes native "chatter" to fd 2
in between, on a pseudo-terminal and then piped. (A real export reports its stages in
test_tflite_export.py.)
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys

CHILD = """
import os
from edgecv.progress import terminal_progress
from edgecv_tflite.export import _converter_output_held

with _converter_output_held(terminal_progress()) as progress:
    with progress("converting ONNX to TensorFlow", 2) as advance:
        os.write(2, b"absl chatter\\n")
        advance(1)
        os.write(2, b"more chatter\\n")
        advance(1)
print("done")
"""


def test_bar_reaches_the_terminal_and_chatter_does_not() -> None:
    chunks: list[bytes] = []

    def read(fd: int) -> bytes:
        data = os.read(fd, 65536)
        chunks.append(data)
        return data

    status = pty.spawn([sys.executable, "-c", CHILD], read)
    text = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "converting ONNX to TensorFlow" in text, text
    assert "1/2" in text and "2/2" in text, text
    assert "chatter" not in text, text
    assert "done" in text


def test_nothing_but_the_output_when_piped() -> None:
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert result.stderr == ""

"""``edgecv run`` / ``edgecv bench --video`` against hang-ups, kills, double Ctrl-C, damaged and
non-UTF-8 video files and unusable output paths, end to end in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from recording_helpers import count_frames

from edgecv.runtime.sources import opencv_path
from edgecv.testing.cli import assert_one_line_error, run_edgecv


@pytest.fixture(scope="module")
def video(assets: Path) -> Path:
    return assets / "videos" / "pedestrians_vtest_30s.mp4"  # 768x576, 10 fps


@pytest.fixture(scope="module")
def model_path(models: Path) -> Path:
    return models / "yolo11n_320_fp32_dequant.onnx"  # the fastest model: these tests are about the service


class Service:
    """``edgecv run ... --json`` in a subprocess, its JSON lines collected as they come."""

    def __init__(self, *args: str | Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgecv", "run", *map(str, args), "--json", "--thermal", "off"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env={**os.environ, "EDGECV_DEBUG": "0"},
        )
        self.lines: list[str] = []
        self._errors: list[str] = []
        stdout, stderr = self.process.stdout, self.process.stderr
        assert stdout is not None and stderr is not None
        self._readers = [
            threading.Thread(target=lambda: self.lines.extend(stdout), daemon=True),
            threading.Thread(target=lambda: self._errors.extend(stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 120
        while len(self.lines) < count and time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.01)
        assert len(self.lines) >= count, self.finish()[1]

    def finish(self) -> tuple[int, str]:
        """Exit status and stderr, once the process ended."""
        self.process.wait(timeout=120)
        for reader in self._readers:  # the only readers: every line the child wrote is collected
            reader.join(timeout=10)
        return self.process.returncode, "".join(self._errors)


def test_sighup_stops_cleanly_and_finishes_the_recording(
    video: Path, model_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "hangup.mkv"
    service = Service(video, "--model", model_path, "--save", out)
    service.wait_for(5)
    service.process.send_signal(signal.SIGHUP)  # the terminal or SSH session went away
    returncode, stderr = service.finish()
    assert returncode == 0, stderr
    assert " processed, " in stderr and f"annotated video: {out}" in stderr
    assert count_frames(out) == len(service.lines)


def test_kill_9_keeps_the_recording_up_to_the_last_seconds(
    video: Path, model_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed.mkv"
    service = Service(video, "--model", model_path, "--save", out)
    service.wait_for(80)
    service.process.kill()
    service.finish()
    # Playable under its own name; lost: what the writer buffered (256 KiB, about 2 s of this video).
    assert 80 - 40 <= count_frames(out) <= len(service.lines)


def test_double_ctrl_c_interrupts_without_aborting(video: Path, model_path: Path) -> None:
    """The second SIGINT lands while the model's thread is mid-inference: the process must not
    reach interpreter shutdown with that thread inside onnxruntime (SIGABRT, 'terminate called')."""
    for gap_s in (0.0, 0.0, 0.01, 0.05):
        service = Service(video, "--model", model_path)
        service.wait_for(1)
        service.process.send_signal(signal.SIGINT)
        time.sleep(gap_s)
        service.process.send_signal(signal.SIGINT)
        returncode, stderr = service.finish()
        assert returncode in (0, 130, -signal.SIGINT), (returncode, stderr)
        assert "terminate called" not in stderr and "Traceback" not in stderr, stderr


@pytest.fixture
def damaged(video: Path, tmp_path: Path) -> dict[str, Path]:
    """A file that is no video, one cut before its first frame, one cut after 22 frames."""
    data = video.read_bytes()
    files = {
        "garbage": (tmp_path / "garbage.mp4", b"garbage" * 1000),
        "header": (tmp_path / "header.mp4", data[:20_000]),
        "cut": (tmp_path / "cut.mp4", data[:300_000]),
    }
    for path, content in files.values():
        path.write_bytes(content)
    return {name: path for name, (path, _) in files.items()}


def test_a_damaged_video_gives_one_error_line_without_ffmpeg_chatter(
    damaged: dict[str, Path], model_path: Path
) -> None:
    for name in ("garbage", "header"):
        bad = damaged[name]
        commands: list[list[str | Path]] = [
            ["bench", "--video", bad, "--model", model_path, "--frames", "5", "--rounds", "1"],
            ["run", bad, "--model", model_path],
        ]
        for command in commands:
            assert_one_line_error(run_edgecv(*command), f"Cannot decode video {bad}")


def test_decoding_errors_mid_run_are_one_warning(damaged: dict[str, Path], model_path: Path) -> None:
    result = run_edgecv("run", damaged["cut"], "--model", model_path, "--thermal", "off", "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert not [line for line in lines if " @ 0x" in line or line.startswith("[")], result.stderr
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "decoding stopped at frame" in warnings[0], result.stderr


def test_unusable_output_paths_fail_before_the_run(video: Path, model_path: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    run = ("run", video, "--model", model_path, "--thermal", "off")
    assert_one_line_error(run_edgecv(*run, "--stats-json", tmp_path), "--stats-json", "is a folder")
    assert_one_line_error(
        run_edgecv(*run, "--stats-json", blocker / "stats.json"), "--stats-json", "does not take new files"
    )
    assert_one_line_error(
        run_edgecv(*run, "--save", blocker / "out.mkv"), "--save", "does not take new files"
    )
    assert_one_line_error(run_edgecv(*run, "--save", tmp_path), "--save", "is a folder")


def test_non_utf8_video_and_recording_names(model_path: Path, tmp_path: Path) -> None:
    """cv2's video calls segfault on surrogate-escaped str paths (rc 139, no message)."""
    source = Path(os.fsdecode(os.fsencode(tmp_path) + b"/cam\xff.avi"))
    writer = cv2.VideoWriter(opencv_path(source), cv2.VideoWriter.fourcc(*"MJPG"), 10, (160, 120))
    for index in range(8):
        writer.write(np.full((120, 160, 3), index * 30, np.uint8))
    writer.release()
    out = Path(os.fsdecode(os.fsencode(tmp_path) + b"/r\xe9sultat.mkv"))
    result = run_edgecv("run", source, "--model", model_path, "--thermal", "off", "--save", out)
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert count_frames(out) == 8


# Ctrl-C lands 0.05 s into a wait for a thread that runs 0.3 s; the thread notes when it really
# ends: on Python 3.11 a KeyboardInterrupt inside ``Thread.join`` marks the thread as ended while it
# still runs, so ``is_alive`` cannot tell. In a fresh interpreter, as ``edgecv run`` meets it.
BOUNDED_JOIN = """
import signal, threading, time
from edgecv.runtime.threads import join_thread

ended_at = []
thread = threading.Thread(target=lambda: (time.sleep(0.3), ended_at.append(time.monotonic())))
signal.signal(signal.SIGINT, signal.default_int_handler)
thread.start()
threading.Timer(0.05, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)).start()
try:
    join_thread(thread, 5.0)
    print("not interrupted")
except KeyboardInterrupt:
    returned_at = time.monotonic()
    print("interrupted", ended_at[:1] != [] and ended_at[0] <= returned_at,
          signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


def test_a_bounded_join_outlasts_a_second_ctrl_c() -> None:
    """Ctrl-C during the end-of-run wait for a thread is raised only once the thread ended, and the
    wait leaves SIGINT's handler as it found it."""
    result = run_edgecv(code=BOUNDED_JOIN)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["interrupted", "True", "True"], (result.stdout, result.stderr)

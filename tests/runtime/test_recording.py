"""``--save`` recordings: every frame kept when the stream changes size, durable against kill -9,
never written through a planted symlink, and non-UTF-8 names that do not crash OpenCV.

Each case writes a few small synthetic frames (no model); the crash cases run in a subprocess so
that a segfault or a kill shows as a failing test instead of taking pytest down.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from recording_helpers import count_frames

from edgecv.detections import Detections
from edgecv.errors import ConfigError
from edgecv.runtime.outputs import VideoOutput
from edgecv.runtime.results import FrameResult


def _image(height: int, width: int, index: int) -> npt.NDArray[np.uint8]:
    image = np.full((height, width, 3), (index * 7) % 256, np.uint8)
    cv2.rectangle(image, (4, 4), (width // 2, height // 2), (0, 255, 0), -1)
    return image


def _result(image: npt.NDArray[np.uint8], index: int) -> FrameResult:
    shape = (image.shape[0], image.shape[1])
    return FrameResult("test", index, 0.0, image, Detections.empty(("person",), shape), True, 1.0, 10.0)


def test_a_resolution_change_keeps_every_frame_at_the_first_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "changing.mkv"
    output = VideoOutput(out, fps=10)
    with caplog.at_level(logging.WARNING, logger="edgecv"):
        for index in range(30):  # 4:3, then 16:9 (a stream renegotiating), then 4:3 again
            height = 72 if 10 <= index < 20 else 96
            output.edgecv_on_result(_result(_image(height, 128, index), index))
        output.close()
    assert count_frames(out) == 30
    capture = cv2.VideoCapture(str(out))
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (128, 96)
    changes = [r for r in caplog.records if "resolution" in r.getMessage()]
    assert len(changes) == 1, [r.getMessage() for r in caplog.records]  # warned once, not per frame
    assert "128x72" in changes[0].getMessage() and "128x96" in changes[0].getMessage()


def test_mp4_is_cut_into_closed_segments(tmp_path: Path) -> None:
    out = tmp_path / "rec" / "clip.mp4"
    output = VideoOutput(out, fps=10, segment_s=1.0)
    for index in range(25):
        output.edgecv_on_result(_result(_image(48, 64, index), index))
    output.close()
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["clip-0000.mp4", "clip-0001.mp4", "clip-0002.mp4"], names  # no partial left
    assert [count_frames(out.parent / name) for name in names] == [10, 10, 5]
    assert output.files == [out.parent / name for name in names]


_WRITE_THEN_DIE = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from edgecv.detections import Detections
    from edgecv.runtime.outputs import VideoOutput
    from edgecv.runtime.results import FrameResult

    segments = {"segment_s": float(sys.argv[3])} if len(sys.argv) > 3 else {}
    output = VideoOutput(sys.argv[1], fps=10, **segments)
    noise = np.random.default_rng(0)
    for index in range(int(sys.argv[2])):  # noise: each frame adds its own encoded bytes
        image = noise.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        output.edgecv_on_result(
            FrameResult("t", index, 0.0, image, Detections.empty((), (240, 320)), True, 1.0, 10.0)
        )
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("suffix", [".mkv", ".avi"])
def test_a_growing_recording_survives_kill_9(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"crash{suffix}"
    result = subprocess.run([sys.executable, "-c", _WRITE_THEN_DIE, str(out), "80"], capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    # Under its own name, playable, holding all but what the writer still buffered (256 KiB).
    assert 80 - 20 <= count_frames(out) <= 80


def test_mp4_segments_closed_before_kill_9_stay_playable(tmp_path: Path) -> None:
    out = tmp_path / "crash.mp4"
    result = subprocess.run(
        [sys.executable, "-c", _WRITE_THEN_DIE, str(out), "35", "1.0"], capture_output=True
    )
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    segments = sorted(tmp_path.glob("crash-*.mp4"))
    assert [p.name for p in segments] == ["crash-0000.mp4", "crash-0001.mp4", "crash-0002.mp4"]
    assert [count_frames(p) for p in segments] == [10, 10, 10]  # only the open fourth segment is lost


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_planted_symlink_is_replaced_not_written_through(tmp_path: Path, suffix: str) -> None:
    folder, outside = tmp_path / "shared", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("precious")
    out = folder / f"rec{suffix}"
    # The old predictable partial name, and every name the recording ends up with.
    for name in (f".rec.part{suffix}", f"rec{suffix}", f"rec-0000{suffix}"):
        (folder / name).symlink_to(victim)
    output = VideoOutput(out, fps=10)
    for index in range(5):
        output.edgecv_on_result(_result(_image(48, 64, index), index))
    output.close()
    assert victim.read_text() == "precious"
    (written,) = output.files
    assert not written.is_symlink() and count_frames(written) == 5


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_non_utf8_names_are_written_and_read_back(tmp_path: Path, suffix: str) -> None:
    """cv2.VideoWriter / VideoCapture segfault on a surrogate-escaped str path: bytes reach them."""
    folder = os.fsdecode(os.fsencode(tmp_path) + b"/d\xe9j\xe0")
    name = os.fsdecode(b"vid\xff" + suffix.encode())
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from edgecv.detections import Detections
        from edgecv.runtime.outputs import VideoOutput
        from edgecv.runtime.results import FrameResult
        from edgecv.runtime.sources import open_source

        output = VideoOutput(sys.argv[1], fps=10)
        for index in range(6):
            image = np.full((48, 64, 3), index * 30, np.uint8)
            output.edgecv_on_result(
                FrameResult("t", index, 0.0, image, Detections.empty((), (48, 64)), True, 1.0, 10.0)
            )
        output.close()
        with open_source(str(output.files[0])) as source:
            frames = 0
            while True:
                try:
                    frames += source.read(timeout=5.0) is not None
                except Exception:
                    break
        print(frames, len(output.files))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, os.path.join(folder, name)],
        capture_output=True,
        text=True,
        errors="replace",
    )
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.split() == ["6", "1"]


def test_an_unwritable_folder_fails_before_the_first_frame(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="--save"):
        VideoOutput(blocker / "out.mkv", fps=10)
    with pytest.raises(ConfigError, match="is a folder"):
        VideoOutput(tmp_path, fps=10)

"""Progress of long commands: a bar (stage, n/N) on a terminal's stderr; nothing piped or with --json.

The terminal is a pseudo-terminal on stderr only, so stdout stays a pipe and can be compared with
a piped run: progress must never change what a command prints on stdout.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest
from cli_helpers import ASSETS, BUS, edgecv

from edgecv.images import read_image

MODEL_320 = ASSETS / "models" / "yolo11n_320_fp32_dequant.onnx"
COCO_IMAGES = ASSETS / "coco128" / "images" / "train2017"
COCO_LABELS = ASSETS / "coco128" / "labels" / "train2017"
QUICK_BENCH = ("--warmup", "1", "--runs", "2")  # 3 turns


def on_terminal(*args: str | Path, timeout: float = 120) -> tuple[int, str, str]:
    """``edgecv ARGS`` with stderr on a pseudo-terminal: (exit status, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    env = {**os.environ, "EDGECV_ASSETS": str(ASSETS), "EDGECV_DEBUG": "0", "COLUMNS": "120"}
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "edgecv", *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
        )
    finally:
        os.close(slave)
    stdout: list[bytes] = []
    reader = threading.Thread(target=lambda: stdout.append(process.stdout.read() if process.stdout else b""))
    reader.start()
    terminal = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            terminal += chunk
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        process.kill()
        reader.join(timeout=10)
    return code, b"".join(stdout).decode(), terminal.decode(errors="replace")


@pytest.fixture(scope="module")
def four_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLO dataset folder with the first four coco128 images and their labels."""
    root = tmp_path_factory.mktemp("four")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for image in sorted(COCO_IMAGES.glob("*.jpg"))[:4]:
        shutil.copyfile(image, root / "images" / image.name)
        shutil.copyfile(COCO_LABELS / f"{image.stem}.txt", root / "labels" / f"{image.stem}.txt")
    return root


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight 160x120 frames of bus.jpg, as MJPG in an .avi."""
    path = tmp_path_factory.mktemp("video") / "bus.avi"
    frame = cv2.resize(read_image(BUS), (160, 120))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(8):
        writer.write(frame)
    writer.release()
    assert path.stat().st_size > 0
    return path


def without_timings(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("Speed per image")]


def test_val_shows_stage_and_count_on_a_terminal_only(four_images: Path) -> None:
    args = ("val", "--model", MODEL_320, "--data", four_images)
    code, stdout, terminal = on_terminal(*args)
    assert code == 0, terminal
    assert "val yolo11n_320_fp32_dequant.onnx" in terminal and "4/4" in terminal, terminal
    piped = edgecv(*args)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""  # nothing extra when piped
    assert without_timings(stdout) == without_timings(piped.stdout)  # stdout unchanged
    assert stdout.splitlines()[1].split()[:3] == ["all", "4", "13"]


def test_val_json_on_a_terminal_prints_no_progress(four_images: Path) -> None:
    code, stdout, terminal = on_terminal("val", "--model", MODEL_320, "--data", four_images, "--json")
    assert code == 0, terminal
    assert terminal == ""
    assert json.loads(stdout)["images"] == 4


def test_bench_with_data_shows_both_stages(four_images: Path) -> None:
    code, stdout, terminal = on_terminal(
        "bench", "--model", MODEL_320, "--source", BUS, *QUICK_BENCH, "--data", four_images
    )
    assert code == 0, terminal
    assert "bench" in terminal and "3/3" in terminal, terminal
    assert "val yolo11n_320_fp32_dequant.onnx" in terminal and "4/4" in terminal, terminal
    assert "3/3" not in stdout and "4/4" not in stdout


def test_bench_json_on_a_terminal_prints_no_progress(four_images: Path) -> None:
    code, stdout, terminal = on_terminal(
        "bench", "--model", MODEL_320, "--source", BUS, *QUICK_BENCH, "--data", four_images, "--json"
    )
    assert code == 0, terminal
    assert terminal == ""
    assert json.loads(stdout)["results"][0]["accuracy"]["map50_95"] > 0


def test_bench_video_counts_decoded_and_measured_frames(tiny_video: Path) -> None:
    args = ("bench", "--video", tiny_video, "--model", MODEL_320, "--frames", "4", "--rounds", "1")
    code, stdout, terminal = on_terminal(*args, "--skip", "1")
    assert code == 0, terminal
    assert "decode" in terminal and "4/4" in terminal, terminal
    # One round: the bare runtime call and then predict on the 4 decoded frames, then the runtime
    # on 4 frames.
    assert "bench video" in terminal and "12/12" in terminal, terminal
    assert "12/12" not in stdout and stdout.startswith("device ")
    assert "\nvideo bus.avi: 4 frames per round" in stdout
    code, stdout, terminal = on_terminal(*args, "--skip", "1", "--json")
    assert code == 0 and terminal == "", terminal
    assert json.loads(stdout)["frames"] == 4


def test_ncnn_export_shows_its_stage_on_a_terminal_only(tmp_path: Path) -> None:
    args = ("export", "--model", MODEL_320, "--to", "ncnn")
    code, stdout, terminal = on_terminal(*args, "-o", tmp_path / "tty")
    assert code == 0, terminal
    assert "pnnx conversion" in terminal and "1/1" in terminal, terminal
    assert stdout.startswith("exported ")
    piped = edgecv(*args, "-o", tmp_path / "piped")
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == "" and piped.stdout.startswith("exported ")

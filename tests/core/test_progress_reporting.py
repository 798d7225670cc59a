"""What the long-running library functions report to a ``Progress``: stages, totals, every step.

(The terminal side, a bar on stderr only when it is a terminal, is tested through the CLI in
tests/cli/test_cli_progress.py.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

import edgecv
from edgecv.evaluation import validate
from edgecv.images import read_image
from edgecv.model import Model
from edgecv.runtime.throughput import video_throughput
from edgecv.testing.progress import RecordedProgress

MODEL_320 = "yolo11n_320_fp32_dequant.onnx"


@pytest.fixture(scope="module")
def model(models: Path) -> Model:
    return edgecv.load(models / MODEL_320, backend="onnx")


def test_validate_reports_each_image(model: Model, assets: Path, tmp_path: Path) -> None:
    coco = assets / "coco128"
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    for image in sorted((coco / "images" / "train2017").glob("*.jpg"))[:3]:
        shutil.copyfile(image, tmp_path / "images" / image.name)
        shutil.copyfile(
            coco / "labels" / "train2017" / f"{image.stem}.txt", tmp_path / "labels" / f"{image.stem}.txt"
        )
    progress = RecordedProgress()
    result = validate(model, tmp_path, progress=progress)
    assert progress.stages == [(f"val {MODEL_320}", 3, 3)]
    assert result.images == 3


def test_video_throughput_reports_decoding_then_every_measured_frame(
    model: Model, bus_path: Path, tmp_path: Path
) -> None:
    video = tmp_path / "bus.avi"
    frame = cv2.resize(read_image(bus_path), (160, 120))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(5):
        writer.write(frame)
    writer.release()
    progress = RecordedProgress()
    (one, three) = video_throughput(
        model, video, skips=(1, 3), track=False, frames=3, rounds=2, progress=progress
    )
    assert (one.skip, three.skip) == (1, 3)
    # Per round: 3 frames through the bare runtime call, 3 through predict, then 3 through the
    # runtime for each of 2 skips.
    assert progress.stages == [("decode", 3, 3), ("bench video", 2 * (3 + 3 + 2 * 3), 24)]

"""Choosing calibration images for post-training quantization (shared by every exporter)."""

from __future__ import annotations

from pathlib import Path

from edgecv.errors import ConfigError, ImageError
from edgecv.images import iter_image_files


def calibration_files(folder: Path, count: int) -> list[Path]:
    """``count`` images spread evenly over ``folder`` in name order (all of them when it has fewer).

    Spread rather than the first ones: folders of video frames or of one camera per prefix would
    otherwise calibrate on one scene. Deterministic, so an export can be repeated.
    """
    if count < 1:
        raise ConfigError(f"--calib-size must be at least 1, got {count}", "Pass e.g. --calib-size 64.")
    if not folder.is_dir():
        raise ConfigError(
            f"Calibration folder {folder} does not exist",
            "Pass --calib with a folder of representative images (e.g. a few dozen from your data).",
        )
    try:
        files = list(iter_image_files([folder]))
    except ImageError as exc:
        raise ConfigError(
            f"Calibration folder {folder} holds no images",
            "Put 32-128 representative .jpg/.png images in it (e.g. from your validation set).",
        ) from exc
    if count >= len(files):
        return files
    return [files[(index * len(files)) // count] for index in range(count)]

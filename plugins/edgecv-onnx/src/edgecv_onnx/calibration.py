"""Calibration images -> the exact tensors edgecv feeds the model at inference time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from onnxruntime.quantization import CalibrationDataReader

from edgecv.errors import ConfigError, ImageError
from edgecv.images import iter_image_files, read_image
from edgecv.model import Model


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


class ImageCalibrationReader(CalibrationDataReader):  # type: ignore[misc]  # untyped onnxruntime
    """Feeds ``Model.preprocess(image)`` for each file: the letterbox, colour order and scaling the
    pipeline uses, so the calibrated ranges are the ranges seen in production."""

    def __init__(self, model: Model, files: Sequence[Path]) -> None:
        self.model = model
        self.files = list(files)
        self.input_name = model.spec.input.name
        self._iterator: Iterator[Path] = iter(self.files)

    def get_next(self) -> dict[str, npt.NDArray[Any]] | None:
        file = next(self._iterator, None)
        if file is None:
            return None
        tensor, _ = self.model.preprocess(read_image(file))
        return {self.input_name: np.ascontiguousarray(tensor)}

    def rewind(self) -> None:
        self._iterator = iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

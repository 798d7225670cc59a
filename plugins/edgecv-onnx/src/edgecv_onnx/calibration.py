"""Calibration images -> the exact tensors edgecv feeds the model at inference time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from onnxruntime.quantization import CalibrationDataReader

from edgecv import Model
from edgecv.backend import read_image


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

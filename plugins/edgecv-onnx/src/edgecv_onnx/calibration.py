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

Feed = dict[str, npt.NDArray[Any]]
"""One ``session.run`` input: the model's input name -> the preprocessed image."""


class ImageCalibrationReader(CalibrationDataReader):  # type: ignore[misc]  # untyped onnxruntime
    """Feeds ``Model.preprocess(image)`` for each file: the letterbox, colour order and scaling the
    pipeline uses, so the calibrated ranges are the ranges seen in production."""

    def __init__(self, model: Model, files: Sequence[Path]) -> None:
        self.model = model
        self.files = list(files)
        self.input_name = model.spec.input.name
        self._iterator: Iterator[Path] = iter(self.files)

    def feed(self, file: Path) -> Feed:
        tensor, _ = self.model.preprocess(read_image(file))
        return {self.input_name: np.ascontiguousarray(tensor)}

    def feeds(self) -> Iterator[Feed]:
        """One feed per file, read when asked for: a pass over the images holds one at a time."""
        for file in self.files:
            yield self.feed(file)

    def get_next(self) -> Feed | None:
        file = next(self._iterator, None)
        return None if file is None else self.feed(file)

    def rewind(self) -> None:
        self._iterator = iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


class SingleFeedReader(CalibrationDataReader):  # type: ignore[misc]  # untyped onnxruntime
    """One feed, then the end: lets a calibrator's ``collect_data`` take the images one by one.

    onnxruntime's calibrators keep every intermediate output of every image they are given in one
    ``collect_data`` call (about 260 MB per 640x640 YOLOv8n image); given one image per call they
    fold it into their ranges or histograms and drop it.
    """

    def __init__(self, feed: Feed) -> None:
        self._feed: Feed | None = feed

    def get_next(self) -> Feed | None:
        feed, self._feed = self._feed, None
        return feed

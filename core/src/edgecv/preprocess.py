"""Image -> input tensor: letterbox, colour order, scaling, layout, quantization.

One resize, one border copy and one lookup-table pass per channel (float or quantized values);
no per-pixel Python.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import attrs
import cv2
import numpy as np
import numpy.typing as npt

from edgecv.images import Image
from edgecv.spec import InputSpec, LetterboxMode


@attrs.frozen
class LetterboxInfo:
    """How an image was placed into the model input: ``input = image * gain + (pad_x, pad_y)``."""

    gain: float
    pad: tuple[int, int]
    """(left, top) padding in input pixels."""
    image_shape: tuple[int, int]
    """(height, width) of the original image."""
    input_shape: tuple[int, int]
    """(height, width) of the model input."""


def letterbox(
    image: npt.NDArray[np.uint8],
    size: tuple[int, int],
    mode: LetterboxMode = "center",
    pad_value: int = 114,
) -> tuple[npt.NDArray[np.uint8], LetterboxInfo]:
    """Resize ``image`` to fit ``size`` (h, w) keeping its aspect ratio, then pad.

    ``center`` follows Ultralytics' LetterBox (rounded size, padding split around the image);
    ``topleft`` follows YOLOX's preprocessing (truncated size, padding at bottom/right).
    """
    height, width = image.shape[:2]
    target_h, target_w = size
    gain = min(target_h / height, target_w / width)
    if mode == "center":
        new_w, new_h = round(width * gain), round(height * gain)
        left, top = round((target_w - new_w) / 2 - 0.1), round((target_h - new_h) / 2 - 0.1)
    else:
        new_w, new_h = int(width * gain), int(height * gain)
        left = top = 0
    if (new_w, new_h) != (width, height):
        image = cast(Image, cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR))
    right, bottom = target_w - new_w - left, target_h - new_h - top
    if left or top or right or bottom:
        border = cv2.BORDER_CONSTANT
        image = cast(
            Image, cv2.copyMakeBorder(image, top, bottom, left, right, border, value=(pad_value,) * 3)
        )
    return image, LetterboxInfo(gain, (left, top), (height, width), (target_h, target_w))


def to_tensor(canvas: npt.NDArray[np.uint8], spec: InputSpec) -> npt.NDArray[Any]:
    """Convert a letterboxed BGR canvas into the tensor ``spec`` describes (batch of one)."""
    swap = spec.color == "RGB"
    if spec.quantization is not None:
        # cvtColor swaps in one pass (a numpy [..., ::-1] copy is ~50x slower at 640).
        pixels = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB) if swap else canvas
        table = _quantization_table(spec)
        if table is not None:
            pixels = cv2.LUT(pixels, table)
        elif pixels is canvas and spec.layout == "NHWC":
            pixels = canvas.copy()  # the canvas may be the caller's own image (no resize needed)
        layout = pixels.transpose(2, 0, 1) if spec.layout == "NCHW" else pixels
        return np.ascontiguousarray(layout)[None]
    height, width = canvas.shape[:2]
    if spec.layout == "NCHW":
        # Plane by plane: cv2.split + a float lookup table per channel, written in place, is ~10x
        # faster than cv2.dnn.blobFromImage on OpenCV 5 and than a strided numpy transpose.
        tensor = np.empty((1, 3, height, width), np.float32)
        table = _scale_table(spec.scale)
        planes = cv2.split(canvas)
        for index, plane in enumerate(planes[::-1] if swap else planes):
            cv2.LUT(plane, table, dst=tensor[0, index])
    else:
        pixels = canvas[..., ::-1] if swap else canvas
        tensor = np.multiply(pixels, np.float32(spec.scale), dtype=np.float32)[None]
    return tensor if spec.dtype == "float32" else tensor.astype(spec.dtype)


@functools.lru_cache(maxsize=8)
def _scale_table(scale: float) -> npt.NDArray[np.float32]:
    """Pixel value (0..255) -> float input value, for ``cv2.LUT``."""
    table: npt.NDArray[np.float32] = (np.arange(256, dtype=np.float32) * np.float32(scale)).reshape(1, 256)
    return table


@functools.lru_cache(maxsize=8)
def _quantization_table(spec: InputSpec) -> npt.NDArray[Any] | None:
    """Pixel value (0..255) -> quantized input value, for ``cv2.LUT`` (built once per input spec);
    ``None`` when the input takes pixels as they are (uint8, scale 1, zero point 0: Hailo, uint8
    TFLite), which then costs no pass at all."""
    assert spec.quantization is not None
    info = np.iinfo(np.dtype(spec.dtype))
    scale = float(np.asarray(spec.quantization.scale, dtype=np.float64).reshape(-1)[0])
    zero_point = float(np.asarray(spec.quantization.zero_point).reshape(-1)[0])
    real = np.arange(256, dtype=np.float64) * spec.scale
    table = np.clip(np.rint(real / scale) + zero_point, info.min, info.max).astype(spec.dtype)
    identity = table.dtype == np.uint8 and np.array_equal(table, np.arange(256))
    return None if identity else table.reshape(1, 256)


def preprocess(image: npt.NDArray[np.uint8], spec: InputSpec) -> tuple[npt.NDArray[Any], LetterboxInfo]:
    canvas, info = letterbox(image, spec.size, spec.letterbox, spec.pad_value)
    return to_tensor(canvas, spec), info

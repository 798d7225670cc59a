"""Reading images from disk and checking arrays handed in by callers."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from edgecv.errors import ImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

Image = npt.NDArray[np.uint8]
"""A BGR image, (H, W, 3) uint8, as OpenCV reads it."""

ImageLike = str | os.PathLike[str] | Image


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read ``path`` as a BGR uint8 image; truncated or non-image files raise ``ImageError``."""
    file = Path(path)
    if not file.exists():
        raise ImageError(f"Image {file} does not exist", "Check the path.")
    if file.is_dir():
        raise ImageError(f"{file} is a folder, not an image", "Pass image files, or the folder to predict.")
    data = np.fromfile(file, dtype=np.uint8)
    if _truncated(data):
        raise ImageError(f"Image {file} is truncated ({data.size} bytes)", "Copy or download the file again.")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageError(
            f"Cannot decode {file}: not an image OpenCV can read",
            f"Pass a JPEG, PNG, BMP, WebP or TIFF file ({', '.join(IMAGE_SUFFIXES)}).",
        )
    return cast(Image, image)


def _truncated(data: npt.NDArray[np.uint8]) -> bool:
    """JPEG must end with EOI (FF D9), PNG with an IEND chunk; libjpeg would only warn."""
    head = data[:8].tobytes()
    tail = data[-32:].tobytes().rstrip(b"\x00\r\n ")
    if head.startswith(b"\xff\xd8\xff"):
        return not tail.endswith(b"\xff\xd9")
    if head.startswith(b"\x89PNG"):
        return b"IEND" not in tail
    return False


def as_bgr(image: npt.NDArray[Any]) -> Image:
    """Check an array from a caller: BGR uint8 (H, W, 3); grey and BGRA are converted."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise ImageError(f"Expected a uint8 BGR image array, got {kind}", "Pass cv2.imread(...) output.")
    if image.ndim == 2:
        return cast(Image, cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    if image.ndim == 3 and image.shape[2] == 4:
        return cast(Image, cv2.cvtColor(image, cv2.COLOR_BGRA2BGR))
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"Expected an image shaped (H, W, 3), got {image.shape}", "Pass a BGR image.")
    return cast(Image, image)


def iter_image_files(sources: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Expand folders into their image files (sorted); pass files through for ``read_image``."""
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ImageError(
                    f"Folder {path} holds no images",
                    f"Put {', '.join(IMAGE_SUFFIXES)} files in it or pass image paths.",
                )
            yield from files
        else:
            yield path

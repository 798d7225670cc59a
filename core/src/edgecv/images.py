"""Reading images from disk (bounded in memory), writing them, and checking arrays handed in by callers.

Memory bound: the file is read whole (its size counts), and the header of a JPEG, PNG, BMP, WebP or
TIFF file is read before anything is decoded. At most ``MAX_PIXELS`` (100 MP) are decoded from one
file: 300 MB as BGR, about twice that at OpenCV's peak. A progressive or lossless JPEG must itself be
within ``MAX_PIXELS``: libjpeg buffers all its coefficients (3-6 bytes a pixel) whatever the output
size. ``read_image_reduced`` decodes a baseline JPEG at 1/2, 1/4 or 1/8 (libjpeg's DCT scaling, no
full-size buffer) while its longer side stays at least ``KEEP_SIDE``: any baseline JPEG (at most
65535 px a side) then decodes to at most (2 x 4096)^2 = 67 MP, and a 20000x20000 one takes 0.27 GB
at peak in ``edgecv predict`` instead of 2.4 GB. Other formats (PPM, EXR, JPEG 2000, ...) have no
header check: OpenCV's own limit (2^30 pixels) bounds their decode and ``MAX_PIXELS`` is checked after.

File names are never handed to OpenCV as text (its file functions crash on names that are not UTF-8):
files are read with ``np.fromfile`` and written with Python's file functions, decoded and encoded in
memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import attrs
import cv2
import numpy as np
import numpy.typing as npt

from edgecv.errors import EdgecvError, ImageError, one_line
from edgecv.files import atomic_target

if TYPE_CHECKING:
    from edgecv.detections import Detections

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

MAX_PIXELS = 100_000_000
"""The most pixels decoded from one file (and the most a progressive or lossless JPEG may have)."""
KEEP_SIDE = 4096
"""A reduced JPEG keeps at least this many pixels on its longer side: 3x a 1280 detector input."""

Image = npt.NDArray[np.uint8]
"""A BGR image, (H, W, 3) uint8, as OpenCV reads it."""

ImageLike = str | os.PathLike[str] | Image

_DECODE_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
ByteOrder = Literal["little", "big"]


@attrs.frozen
class ReducedImage:
    """An image decoded at ``image.shape`` from a file whose image is ``source_shape`` (height, width)."""

    image: Image
    source_shape: tuple[int, int]

    @property
    def reduced(self) -> bool:
        return self.image.shape[:2] != self.source_shape

    def restore(self, detections: Detections) -> Detections:
        """``detections`` found on ``image``, in the source image's pixels (as if decoded in full)."""
        if not self.reduced:
            return detections
        height, width = self.image.shape[:2]
        scale = np.array([self.source_shape[1] / width, self.source_shape[0] / height] * 2, np.float32)
        return attrs.evolve(detections, boxes=detections.boxes * scale, image_shape=self.source_shape)


@attrs.frozen
class _Header:
    """What a file's header says: size, and how the decoder will spend memory on it."""

    kind: str
    width: int
    height: int
    scalable: bool = False
    """libjpeg can decode it at 1/2, 1/4 or 1/8 without a full-size buffer."""
    buffered: bool = False
    """The decoder holds the whole source (progressive JPEG coefficients), however small the output."""


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read ``path`` as a BGR uint8 image in full; truncated, non-image or too large files: ``ImageError``."""
    return _read(Path(path), reduce=False).image


def read_image_reduced(path: str | os.PathLike[str]) -> ReducedImage:
    """Read ``path`` like ``read_image``, a large baseline JPEG reduced (see the module's memory bound).

    Detections on the result's ``image`` are in its pixels: ``restore`` maps them to the file's.
    """
    return _read(Path(path), reduce=True)


def _read(file: Path, *, reduce: bool) -> ReducedImage:
    if not file.exists():
        if file.is_symlink():
            raise ImageError(
                f"Image {file} is a broken symbolic link (to {os.readlink(file)})", "Fix or remove the link."
            )
        raise ImageError(f"Image {file} does not exist", "Check the path.")
    if file.is_dir():
        raise ImageError(f"{file} is a folder, not an image", "Pass image files, or the folder to predict.")
    if not file.is_file():  # reading a FIFO would block; a device is no image
        raise ImageError(f"{file} is not a regular file", "Pass image files.")
    try:
        data = np.fromfile(file, dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"Cannot read {file}: {exc.strerror or exc}", "Check its permissions.") from exc
    if _truncated(data):
        raise ImageError(f"Image {file} is truncated ({data.size} bytes)", "Copy or download the file again.")
    header = _header(data.data)
    factor = _factor(header) if reduce and header is not None else 1
    if header is not None:
        _check_size(file, header, factor)
    try:
        image = cv2.imdecode(data, _DECODE_FLAGS[factor]) if data.size else None
    except cv2.error as exc:
        raise ImageError(f"Cannot decode {file}: {one_line(exc)}", "Check the file.") from exc
    if image is None:
        raise ImageError(
            f"Cannot decode {file}: not an image OpenCV can read",
            f"Pass a JPEG, PNG, BMP, WebP or TIFF file ({', '.join(IMAGE_SUFFIXES)}).",
        )
    if header is None:
        _check_size(file, _Header("image", image.shape[1], image.shape[0]), 1)
    return ReducedImage(cast(Image, image), _source_shape(header, image, factor))


def _factor(header: _Header) -> int:
    """The largest reduction keeping ``KEEP_SIDE`` pixels on the longer side (1 when not scalable)."""
    if not header.scalable:
        return 1
    side = max(header.width, header.height)
    return next((f for f in (8, 4, 2) if -(-side // f) >= KEEP_SIDE), 1)


def _check_size(file: Path, header: _Header, factor: int) -> None:
    decoded = -(-header.width // factor) * -(-header.height // factor)
    held = header.width * header.height if header.buffered else decoded
    if held > MAX_PIXELS:
        size = f"{header.width}x{header.height} pixels ({header.width * header.height / 1e6:.0f} MP)"
        limit = f"{MAX_PIXELS / 1e6:.0f} MP"
        raise ImageError(
            f"Image {file} is {size}, more than the {limit} edgecv decodes from a {header.kind}",
            "Downscale it (edgecv predict decodes baseline JPEGs of any size reduced).",
        )


def _source_shape(header: _Header | None, image: npt.NDArray[Any], factor: int) -> tuple[int, int]:
    height, width = image.shape[:2]
    if header is None or factor == 1:
        return height, width
    # EXIF orientation may have turned the decoded image: match the header's sides to it.
    if (header.height > header.width) == (height > width):
        return header.height, header.width
    return header.width, header.height


def _header(data: memoryview) -> _Header | None:
    """Size from the header of a JPEG, PNG, BMP, WebP or TIFF file; ``None`` for anything else."""
    head = bytes(data[:32])
    if head.startswith(b"\xff\xd8"):
        return _jpeg_header(data)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return _Header("PNG", _int(head, 16, 4), _int(head, 20, 4))
    if head.startswith(b"BM") and len(head) >= 26:
        if _int(head, 14, 4, "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sides
            return _Header("BMP", _int(head, 18, 2, "little"), _int(head, 20, 2, "little"))
        height = abs(int.from_bytes(head[22:26], "little", signed=True))  # negative: top-down rows
        return _Header("BMP", _int(head, 18, 4, "little"), height)
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8X":
            return _Header("WebP", _int(head, 24, 3, "little") + 1, _int(head, 27, 3, "little") + 1)
        if chunk == b"VP8L":
            bits = _int(head, 21, 4, "little")
            return _Header("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        if chunk == b"VP8 ":
            return _Header("WebP", _int(head, 26, 2, "little") & 0x3FFF, _int(head, 28, 2, "little") & 0x3FFF)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_header(data, "little" if head[0] == ord("I") else "big")
    return None


# Start-of-frame markers: baseline and extended sequential (C0, C1, C9) stream and scale; progressive
# (C2, CA) scale but buffer every coefficient; lossless and hierarchical ones do neither.
_SEQUENTIAL, _PROGRESSIVE = (0xC0, 0xC1, 0xC9), (0xC2, 0xCA)
_FRAMES = (*_SEQUENTIAL, *_PROGRESSIVE, 0xC3, 0xC5, 0xC6, 0xC7, 0xCB, 0xCD, 0xCE, 0xCF)


def _jpeg_header(data: memoryview) -> _Header | None:
    """The first start-of-frame segment; ``None`` when the markers before it are malformed."""
    at = 2
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            at += 2
        elif marker in _FRAMES:
            height, width = _int(data, at + 5, 2), _int(data, at + 7, 2)
            if marker in _SEQUENTIAL:
                return _Header("JPEG", width, height, scalable=True)
            if marker in _PROGRESSIVE:
                return _Header("progressive JPEG", width, height, scalable=True, buffered=True)
            return _Header("lossless JPEG", width, height, buffered=True)
        elif marker == 0xDA:  # scan data before any frame header
            return None
        else:
            at += 2 + _int(data, at + 2, 2)
    return None


def _tiff_header(data: memoryview, byteorder: ByteOrder) -> _Header | None:
    """ImageWidth (256) and ImageLength (257) from the first IFD (BigTIFF: ``None``)."""
    offset = _int(data, 4, 4, byteorder)
    if offset + 2 > len(data):
        return None
    sides: dict[int, int] = {}
    for entry in range(offset + 2, offset + 2 + 12 * _int(data, offset, 2, byteorder), 12):
        if entry + 12 > len(data):
            return None
        tag, kind = _int(data, entry, 2, byteorder), _int(data, entry + 2, 2, byteorder)
        if tag in (256, 257) and kind in (3, 4):  # SHORT or LONG, stored in the entry itself
            sides[tag] = _int(data, entry + 8, 2 if kind == 3 else 4, byteorder)
    return _Header("TIFF", sides[256], sides[257]) if len(sides) == 2 else None


def _int(data: bytes | memoryview, at: int, size: int, byteorder: ByteOrder = "big") -> int:
    return int.from_bytes(bytes(data[at : at + size]), byteorder)


def _truncated(data: npt.NDArray[np.uint8]) -> bool:
    """JPEG must end with EOI (FF D9), PNG with an IEND chunk; libjpeg would only warn."""
    head = data[:8].tobytes()
    tail = data[-32:].tobytes().rstrip(b"\x00\r\n ")
    if head.startswith(b"\xff\xd8\xff"):
        return not tail.endswith(b"\xff\xd9")
    if head.startswith(b"\x89PNG"):
        return b"IEND" not in tail
    return False


def write_image(path: Path, image: Image) -> Path:
    """Encode ``image`` as ``path``'s suffix says and write it under a fresh name, renamed onto ``path``.

    OpenCV only encodes (in memory): its ``imwrite`` crashes on names that are not UTF-8, and would
    write through a symbolic link planted at ``path``; ``atomic_target`` replaces such a link instead.
    """
    try:
        encoded, data = cv2.imencode(path.suffix, image)
    except cv2.error:
        encoded = False
    if not encoded:
        raise EdgecvError(
            f"Cannot write {path}: OpenCV has no image encoder for {path.suffix or 'names without a suffix'}",
            f"Name the file with an image suffix ({', '.join(IMAGE_SUFFIXES)}).",
        )
    try:
        with atomic_target(path) as partial, open(partial, "wb") as out:
            out.write(data.data)
    except OSError as exc:
        raise EdgecvError(
            f"Cannot write {path}: {exc.strerror or exc}", "Check that the folder exists and is writable."
        ) from exc
    return path


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

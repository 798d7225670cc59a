"""What a loaded model is: its input tensor, its outputs, how images become tensors, how outputs decode.

Everything here is decided once at load time, from the file's own metadata plus the user's
overrides, so the per-frame path only does array work.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import math
import os
import reprlib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from edgecv.decoders.base import Decoder
from edgecv.errors import ConfigError, ModelError
from edgecv.files import sha256_of
from edgecv.names import COCO80

MAX_METADATA_VALUE = 64 * 1024
"""Characters of one metadata value parsed as a literal: names for thousands of classes fit."""
MAX_METADATA_IMGSZ = 8192
"""The largest input side taken from metadata (a bigger one would letterbox into gigabytes)."""

Layout = Literal["NCHW", "NHWC"]
ColorOrder = Literal["RGB", "BGR"]
LetterboxMode = Literal["center", "topleft"]


class MetadataWarning(UserWarning):
    """A model's metadata value was ignored (too large, too deeply nested, or malformed)."""


@attrs.frozen
class Quantization:
    """Affine quantization of a tensor: ``real = (q - zero_point) * scale``.

    ``scale`` and ``zero_point`` are scalars for per-tensor quantization or 1-D sequences
    along ``axis`` for per-channel quantization.
    """

    scale: float | tuple[float, ...]
    zero_point: int | tuple[int, ...] = 0
    axis: int | None = None


@attrs.frozen
class TensorSpec:
    """A tensor as the model file declares it. ``None`` in ``shape`` marks a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    quantization: Quantization | None = None


@attrs.frozen
class InputSpec:
    """The model input plus the recipe that turns a BGR image into it."""

    name: str
    shape: tuple[int | None, ...]
    layout: Layout
    dtype: str
    size: tuple[int, int]
    """(height, width) the image is letterboxed to."""
    quantization: Quantization | None = None
    color: ColorOrder = "RGB"
    scale: float = 1 / 255
    """Multiplier from 0..255 pixel values to the model's float range (1/255, or 1.0 for raw)."""
    letterbox: LetterboxMode = "center"
    pad_value: int = 114


@attrs.frozen
class ModelSpec:
    """Everything the pipeline needs to know about a loaded model."""

    path: Path
    backend: str
    input: InputSpec
    outputs: tuple[TensorSpec, ...]
    names: tuple[str, ...]
    decoder: Decoder
    """Turns the raw outputs into boxes (chosen at load time from the registered decoders)."""
    task: str = "detect"
    boxes_normalized: bool = False
    """True when the model emits boxes in 0..1 of the input size instead of input pixels."""
    metadata: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def sha256(self) -> str:
        """sha256 of the model file (or of the files in a model directory), computed once."""
        return file_sha256(self.path)

    @property
    def imgsz(self) -> tuple[int, int]:
        return self.input.size

    @property
    def arch(self) -> str:
        """The decoder's name (``"yolov8"``, ``"yolox"``, ...)."""
        return self.decoder.name


@attrs.frozen
class SessionSpec:
    """What a backend's session declares about the model file it opened (``Session.spec``)."""

    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    layout: Layout | None = None
    """Input layout when the backend knows it; otherwise inferred from the input shape."""
    boxes_normalized: bool | None = None


def to_tuple(values: Iterable[str]) -> tuple[str, ...]:
    """attrs converter: any iterable of strings -> tuple (keeps frozen classes hashable)."""
    return tuple(values)


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    target = Path(path)
    if not target.is_dir():
        return sha256_of(target)
    digest = hashlib.sha256()  # a model folder (NCNN): its files' bytes in name order
    for file in sorted(p for p in target.rglob("*") if p.is_file()):
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def parse_metadata_value(value: str, key: str = "") -> Any:
    """Ultralytics stores Python literals as strings (``"{0: 'person'}"``, ``"[640, 640]"``).

    A value that is not a literal is returned as it is. Metadata is untrusted: a value longer than
    ``MAX_METADATA_VALUE`` characters, or nested too deeply for Python's parser, is not parsed
    either, with a ``MetadataWarning`` naming ``key``.
    """
    if len(value) > MAX_METADATA_VALUE:
        _ignored(key, f"is {len(value):,} characters long, more than the {MAX_METADATA_VALUE:,} read")
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError):
        return value
    except (RecursionError, MemoryError):  # the parser's own limits on nesting
        _ignored(key, "is nested too deeply to read")
        return value


_OVERRIDES = {
    "names": " (pass --names FILE, names= in Python)",
    "imgsz": " (pass --imgsz, imgsz= in Python)",
    "edgecv_input": " (the decoder's default input recipe is used)",
}


def _ignored(key: str, why: str) -> None:
    warnings.warn(
        f"model metadata {key or 'value'!r} {why}; it is ignored{_OVERRIDES.get(key, '')}",
        MetadataWarning,
        stacklevel=3,
    )


def names_from_metadata(metadata: Mapping[str, str]) -> tuple[str, ...] | None:
    """The class names the file declares (a list, or a dict by class id 0..N-1), else ``None``."""
    raw = metadata.get("names")
    if raw is None:
        return None
    value = parse_metadata_value(raw, "names") if isinstance(raw, str) else raw
    if isinstance(value, Mapping):
        return _names_by_id(value)
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value) or None
    return None


def _names_by_id(value: Mapping[Any, Any]) -> tuple[str, ...] | None:
    """``{0: 'person', 1: 'bicycle'}`` (keys may be digit strings) in class-id order."""
    by_id: dict[int, str] = {}
    for key, name in value.items():
        number = key if type(key) is int else int(key) if isinstance(key, str) and key.isdecimal() else None
        if number is None or number in by_id:
            _ignored("names", "is a dict whose keys are not all distinct class ids")
            return None
        by_id[number] = str(name)
    return tuple(by_id[i] for i in sorted(by_id)) or None


def load_names(names: Sequence[str] | str | os.PathLike[str]) -> tuple[str, ...]:
    """Class names given by the user: a sequence, or a text file with one name per line."""
    hint = "Pass a text file with one class name per line (names=[...] in Python)."
    if isinstance(names, (str, os.PathLike)):
        path = Path(names)
        if not path.is_file():
            raise ConfigError(f"Names file {path} does not exist or is not a file", hint)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Cannot read names file {path}: {exc}", hint) from exc
        found = tuple(line.strip() for line in text.splitlines() if line.strip())
        if not found:
            raise ConfigError(f"Names file {path} holds no class names", hint)
        return found
    found = tuple(str(n) for n in names)
    if not found:
        raise ConfigError("The class names are empty", hint)
    return found


def imgsz_from_metadata(metadata: Mapping[str, str]) -> tuple[int, int] | None:
    """The input size the file declares (``640`` or ``[H, W]``), or ``None`` when it declares none.

    A size that is not 1 to ``MAX_METADATA_IMGSZ`` pixels a side is ignored with a warning.
    """
    raw = metadata.get("imgsz")
    if raw is None:
        return None
    value = parse_metadata_value(raw, "imgsz") if isinstance(raw, str) else raw
    if isinstance(value, int):
        value = (value, value)
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        return None
    sides = [_side(v) for v in value]
    if sides[0] is None or sides[1] is None:
        _ignored("imgsz", f"is {reprlib.repr(value)}, not two sizes from 1 to {MAX_METADATA_IMGSZ}")
        return None
    return (sides[0], sides[1])


def _side(value: object) -> int | None:
    """A whole number of pixels from 1 to ``MAX_METADATA_IMGSZ`` (``640.0`` too), else ``None``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not int or not 0 < value <= MAX_METADATA_IMGSZ:
        return None
    return value


RECIPE_KEYS = ("color", "scale", "letterbox", "pad_value")


def recipe_from_metadata(metadata: Mapping[str, str]) -> dict[str, Any]:
    """The input recipe an edgecv export recorded (``edgecv_input``: colour order, scale, letterbox,
    pad value), which wins over the decoder's default: a graph that takes uint8 BGR pixels and
    converts them itself records ``BGR`` and ``1.0``. Values that are not a valid recipe are
    ignored with a ``MetadataWarning`` (metadata is untrusted)."""
    raw = metadata.get("edgecv_input")
    if raw is None:
        return {}
    value = parse_metadata_value(raw, "edgecv_input") if isinstance(raw, str) else raw
    if isinstance(value, str):
        try:
            value = json.loads(value)  # JSON (true/false/null) is not always a Python literal
        except ValueError:
            value = None
    if not isinstance(value, Mapping):
        _ignored("edgecv_input", "is not a mapping")
        return {}
    recipe = {key: value[key] for key in RECIPE_KEYS if key in value}
    scale = recipe.get("scale", 1.0)
    pad = recipe.get("pad_value", 0)
    valid = (
        recipe.get("color", "RGB") in ("RGB", "BGR")
        and recipe.get("letterbox", "center") in ("center", "topleft")
        and isinstance(scale, (int, float))
        and not isinstance(scale, bool)
        and math.isfinite(scale)
        and scale > 0
        and type(pad) is int
        and 0 <= pad <= 255
    )
    if not valid:
        _ignored("edgecv_input", f"holds an input recipe edgecv cannot use: {reprlib.repr(recipe)}")
        return {}
    if "scale" in recipe:
        recipe["scale"] = float(scale)
    return recipe


def shapes_match(ours: Sequence[TensorSpec], theirs: Sequence[TensorSpec]) -> bool:
    """Whether two models' tensors have the same shapes, a dynamic (None) dimension matching any:
    what an exporter checks after loading its result as users will."""
    return len(ours) == len(theirs) and all(
        len(a.shape) == len(b.shape)
        and all(x is None or y is None or x == y for x, y in zip(a.shape, b.shape, strict=True))
        for a, b in zip(ours, theirs, strict=True)
    )


def normalize_imgsz(imgsz: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(imgsz, int):
        size = (imgsz, imgsz)
    else:
        values = tuple(int(v) for v in imgsz)
        size = (values[0], values[0]) if len(values) == 1 else (values[0], values[1])
    if min(size) <= 0 or size[0] % 32 or size[1] % 32:
        raise ConfigError(f"Image size {size} is not usable", "Pass a positive multiple of 32, e.g. 640.")
    return size


def infer_layout(shape: Sequence[int | None]) -> Layout:
    if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3):
        return "NCHW"
    if len(shape) == 4 and shape[3] in (1, 3):
        return "NHWC"
    raise ModelError(
        f"Cannot tell the input layout of shape {list(shape)}",
        "edgecv expects one image input shaped [1,3,H,W] (NCHW) or [1,H,W,3] (NHWC).",
    )


def spatial_size(shape: Sequence[int | None], layout: Layout) -> tuple[int | None, int | None]:
    return (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])


def resolve_input_size(
    tensor_shape: Sequence[int | None],
    layout: Layout,
    metadata: Mapping[str, str],
    requested: int | Sequence[int] | None,
) -> tuple[int, int]:
    """The letterbox size: fixed by a static input, else the user's, the metadata's or 640."""
    height, width = spatial_size(tensor_shape, layout)
    wanted = normalize_imgsz(requested) if requested is not None else None
    if height is not None and width is not None:
        if wanted is not None and wanted != (height, width):
            raise ConfigError(
                f"The model input is fixed at {height}x{width}; "
                f"image size {wanted[0]}x{wanted[1]} cannot be used",
                f"Drop --imgsz or pass {height}, or re-export the model at the size you want.",
            )
        return (height, width)
    return wanted or imgsz_from_metadata(metadata) or (640, 640)


def default_names(count: int) -> tuple[str, ...]:
    return COCO80 if count == len(COCO80) else tuple(f"class{i}" for i in range(count))

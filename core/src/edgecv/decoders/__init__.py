"""Output decoders, chosen from a model's metadata and output shapes (or ``arch=``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edgecv.decoders.base import Candidates, DecodeContext, Decoder, Shape
from edgecv.decoders.end2end import END2END
from edgecv.decoders.nms import batched_nms, nms
from edgecv.decoders.yolov5 import YOLOV5
from edgecv.decoders.yolov8 import YOLOV8
from edgecv.decoders.yolox import YOLOX
from edgecv.errors import ConfigError, DecodeError

# Order matters for auto-detection: the most specific layouts first.
DECODERS: dict[str, Decoder] = {d.name: d for d in (END2END, YOLOV8, YOLOX, YOLOV5)}

__all__ = [
    "DECODERS",
    "Candidates",
    "DecodeContext",
    "Decoder",
    "batched_nms",
    "choose_decoder",
    "nms",
    "supported_layouts",
]


def supported_layouts() -> str:
    return "; ".join(f"{d.name} {d.layout}" for d in DECODERS.values())


def choose_decoder(
    shapes: Sequence[Shape],
    num_classes: int | None,
    input_size: tuple[int, int],
    metadata: Mapping[str, str],
    arch: str | None = None,
) -> Decoder:
    """The decoder for a model: ``arch`` when given, else the first whose layout matches."""
    if arch is not None:
        decoder = DECODERS.get(arch.lower())
        if decoder is None:
            raise ConfigError(f"Unknown arch {arch!r}", f"Choose one of: {', '.join(DECODERS)}.")
        return decoder
    if str(metadata.get("end2end", "")).lower() == "true":
        return END2END
    for decoder in DECODERS.values():
        if decoder.matches(shapes, num_classes, input_size):
            return decoder
    shown = ", ".join(str([d if d is not None else "?" for d in s]) for s in shapes)
    classes = f" with {num_classes} class names" if num_classes is not None else ""
    raise DecodeError(
        f"No decoder understands the output layout {shown}{classes}; supported: {supported_layouts()}",
        "If the model is one of these, pass --arch NAME (arch= in Python) and check that --names "
        "matches the model's class count; for another head, load it with the arch= whose output "
        "shape it has and override edgecv_postprocess in a plugin.",
    )

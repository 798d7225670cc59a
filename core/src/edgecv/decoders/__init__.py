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

# The core's decoders, registered by ``edgecv.defaults``. Order matters for auto-detection: the
# most specific layouts first (plugins' decoders are tried before all of these).
BUILTIN_DECODERS: tuple[Decoder, ...] = (END2END, YOLOV8, YOLOX, YOLOV5)
DECODERS: dict[str, Decoder] = {d.name: d for d in BUILTIN_DECODERS}

__all__ = [
    "BUILTIN_DECODERS",
    "DECODERS",
    "Candidates",
    "DecodeContext",
    "Decoder",
    "batched_nms",
    "choose_decoder",
    "nms",
    "supported_layouts",
]


def supported_layouts(decoders: Sequence[Decoder] = BUILTIN_DECODERS) -> str:
    return "; ".join(f"{d.name} {d.layout}" for d in decoders)


def choose_decoder(
    shapes: Sequence[Shape],
    num_classes: int | None,
    input_size: tuple[int, int],
    metadata: Mapping[str, str],
    arch: str | None = None,
    decoders: Sequence[Decoder] = BUILTIN_DECODERS,
) -> Decoder:
    """The decoder for a model: ``arch`` when given, else the first of ``decoders`` whose layout matches."""
    by_name = {d.name: d for d in reversed(decoders)}  # the first registered wins a name clash
    if arch is not None:
        decoder = by_name.get(arch.lower())
        if decoder is None:
            raise ConfigError(f"Unknown arch {arch!r}", f"Choose one of: {', '.join(by_name)}.")
        return decoder
    if str(metadata.get("end2end", "")).lower() == "true" and "end2end" in by_name:
        return by_name["end2end"]
    for decoder in decoders:
        if decoder.matches(shapes, num_classes, input_size):
            return decoder
    shown = ", ".join(str([d if d is not None else "?" for d in s]) for s in shapes)
    classes = f" with {num_classes} class names" if num_classes is not None else ""
    raise DecodeError(
        f"No decoder understands the output layout {shown}{classes}; "
        f"supported: {supported_layouts(decoders)}",
        "If the model is one of these, pass --arch NAME (arch= in Python) and check that --names "
        "matches the model's class count; for another head, load it with the arch= whose output "
        "shape it has and override edgecv_postprocess in a plugin.",
    )

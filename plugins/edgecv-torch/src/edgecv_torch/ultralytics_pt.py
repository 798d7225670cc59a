"""Ultralytics YOLOv8 detect checkpoints (``.pt``) as edgecv's ``YOLOv8``, when Ultralytics is installed.

An Ultralytics ``.pt`` is a pickle of its own classes: reading it runs code named in the file, and
needs the ``ultralytics`` package (AGPL-3.0, which edgecv never depends on). So edgecv reads one
only when asked to, once, through ``edgecv compress from-ultralytics`` (or ``from_ultralytics``),
and writes an edgecv-torch checkpoint (weights only, loaded without running code) that every other
command takes. BatchNorm is folded into the convolutions (Ultralytics' own ``fuse``), which is the
layout of its ONNX exports and of ``YOLOv8``.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path

from edgecv.backend import ConfigError, ModelError, one_line, pip_hint
from edgecv_torch.yolov8 import YOLOv8


def from_ultralytics(path: Path) -> YOLOv8:
    """The YOLOv8 detector in the Ultralytics checkpoint ``path`` (on the CPU, in eval mode).

    ``ConfigError`` when ``ultralytics`` is not installed; ``ModelError`` for a file that is not an
    Ultralytics YOLOv8 detect checkpoint (YOLO11, segmentation, a damaged file...).
    """
    if importlib.util.find_spec("ultralytics") is None:
        raise ConfigError(
            f"Reading {path.name} needs the ultralytics package, which is not installed",
            f"Install it ({pip_hint('ultralytics')}; AGPL-3.0), or export the model to ONNX with "
            "Ultralytics and pass the .onnx file.",
        )
    if not path.is_file():
        raise ModelError(f"Model file not found: {path}", "Check the path.")
    from ultralytics.nn.tasks import load_checkpoint  # type: ignore[import-not-found,unused-ignore]

    try:
        module, checkpoint = load_checkpoint(path, device="cpu", fuse=True)
    except Exception as exc:  # torch.load and Ultralytics raise many types for foreign or damaged files
        raise ModelError(
            f"{path.name} is not a readable Ultralytics checkpoint: {type(exc).__name__}: {one_line(exc)}",
            "Pass a YOLOv8 detect .pt written by Ultralytics.",
        ) from exc
    task = getattr(module, "task", None)
    if task != "detect":
        raise ModelError(
            f"{path.name} is an Ultralytics {task} model; edgecv-torch reads YOLOv8 detection",
            "Pass a YOLOv8 detect .pt (e.g. yolov8n.pt).",
        )
    try:
        declared = getattr(module, "names", None)
        pairs = declared.items() if isinstance(declared, Mapping) else enumerate(declared or ())
        names = {int(key): str(value) for key, value in pairs}
        size = (checkpoint.get("train_args") or {}).get("imgsz", 640)
        imgsz = [int(size), int(size)] if isinstance(size, int) else [int(side) for side in size]
        stride = int(max(getattr(module, "stride", [32])))
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"{path.name}: cannot read its class names, input size or stride ({one_line(exc)})",
            "Pass a YOLOv8 detect .pt written by Ultralytics.",
        ) from exc
    metadata = {
        "names": repr(names),
        "imgsz": json.dumps(imgsz),
        "stride": str(stride),
        "task": "detect",
        "edgecv_source": f"Ultralytics checkpoint {path.name} (BatchNorm folded)",
    }
    state = {name: tensor.detach().float().clone() for name, tensor in module.state_dict().items()}
    return YOLOv8.from_state_dict(state, metadata, source=path.name)

"""torch -> ONNX: opset 17, static shapes, simplified with onnxslim, edgecv metadata embedded.

The exporter is torch's TorchScript-based one (``torch.onnx.export(..., dynamo=False)``): it is
deprecated since torch 2.9 but still works in 2.13 and needs nothing beyond torch and onnx. The
default (dynamo) exporter needs ``onnxscript``, which edgecv-torch does not depend on.

The file carries Ultralytics-style metadata (``names`` as ``{0: 'person', ...}``, ``imgsz`` as
``[H, W]``, ``stride``, ``task``) that edgecv's spec reads, plus ``edgecv_*`` keys that record how it
was made (precision, source file and its sha256, package versions), like ``edgecv export --to
onnx``. From it every other exporter takes over (NCNN, TFLite, TensorRT, Hailo).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from edgecv.backend import ConfigError, ModelError, atomic_target, imgsz_from_metadata, one_line, sha256_of
from edgecv_torch.yolov8 import YOLOv8

if TYPE_CHECKING:
    import onnx

OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "output0"
PRECISIONS = ("fp32",)


def export_onnx(
    model: YOLOv8 | nn.Module,
    output: Path,
    *,
    imgsz: int | tuple[int, int] | None = None,
    metadata: Mapping[str, str] | None = None,
    precision: str = "fp32",
    source: Path | None = None,
) -> Path:
    """Write ``model`` to the ONNX file ``output`` atomically and return it.

    ``imgsz``: the static input size (default: the model's, for YOLOv8); ``metadata`` joins (and
    overrides) a YOLOv8's own; ``source``: the file the model came from, hashed into the metadata.
    FP16 and INT8 come from the FP32 file: ``edgecv export out.onnx --to onnx --precision int8``.
    """
    if precision not in PRECISIONS:
        raise ConfigError(
            f"torch -> ONNX export writes FP32, not {precision!r}",
            f"Export FP32, then convert it: edgecv export {output.name} --to onnx --precision {precision}.",
        )
    if output.is_dir() or output.suffix.lower() != ".onnx":
        raise ConfigError(f"The ONNX output {output} is not an .onnx file name", "Pass e.g. -o model.onnx.")
    values = {**(model.metadata if isinstance(model, YOLOv8) else {}), **(metadata or {})}
    height, width = _size(model, imgsz, values)
    values.update(
        {
            "imgsz": str([height, width]),
            "batch": "1",
            "edgecv_precision": precision,
            "edgecv_exporter": f"torch.onnx.export (TorchScript-based, opset {OPSET}) + onnxslim",
            "edgecv_versions": json.dumps(_versions()),
        }
    )
    if source is not None:
        values["edgecv_source"] = source.name
        values["edgecv_source_sha256"] = sha256_of(source)
    proto = _slim(_traced(model, height, width))
    del proto.metadata_props[:]
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    import onnx

    with atomic_target(output) as partial:
        onnx.save(proto, str(partial))
    return output


def _size(
    model: nn.Module, imgsz: int | tuple[int, int] | None, metadata: Mapping[str, str]
) -> tuple[int, int]:
    if imgsz is None:
        size = model.imgsz if isinstance(model, YOLOv8) else imgsz_from_metadata(metadata)
        if size is None:
            raise ConfigError("The input size of the model is not known", "Pass imgsz=(height, width).")
        return size
    height, width = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        raise ConfigError(
            f"Image size {height}x{width} is not usable", "Pass a positive multiple of 32, e.g. 640."
        )
    return height, width


def _traced(model: nn.Module, height: int, width: int) -> onnx.ModelProto:
    import onnx

    example = torch.zeros(1, 3, height, width, dtype=torch.float32, device=_device(model))
    training = model.training
    model.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="edgecv-torch-export-") as folder:
            traced = Path(folder) / "traced.onnx"
            with warnings.catch_warnings():
                # This exporter's deprecation, and the tracer's notes on shapes read as Python ints
                # (static shapes are what is wanted here): noise for a user of the file.
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (example,),
                    traced,
                    dynamo=False,
                    opset_version=OPSET,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    do_constant_folding=True,
                )
            return onnx.load(str(traced))
    except Exception as exc:  # torch raises many types for graphs it cannot trace or convert
        raise ModelError(
            f"The model cannot be exported to ONNX: {type(exc).__name__}: {one_line(exc)}",
            "Export a model whose forward takes one image tensor and returns tensors.",
        ) from exc
    finally:
        model.train(training)


def _slim(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim's constant folding and fusions (the graph stays static, shapes inferred)."""
    import onnxslim  # type: ignore[import-untyped]

    slimmed: onnx.ModelProto | None = onnxslim.slim(proto)
    if slimmed is None:
        raise ModelError("onnxslim could not simplify the exported graph", "Report this with the model.")
    return slimmed


def _device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _versions() -> dict[str, str]:
    import onnx
    import onnxslim

    import edgecv
    import edgecv_torch

    return {
        "edgecv": edgecv.__version__,
        "edgecv-torch": edgecv_torch.__version__,
        "torch": str(torch.__version__),
        "onnx": onnx.__version__,
        "onnxslim": onnxslim.__version__,
    }

"""``edgecv export --to openvino``: ONNX -> an OpenVINO IR folder (NAME.xml + NAME.bin + metadata.yaml).

- ``fp32`` (default): the graph as it is, float32 weights.
- ``fp16``: weights stored as float16 (``ov.save_model(compress_to_fp16=True)``); OpenVINO decompresses
  them on load, so a CPU computes in the ``precision`` the backend asks for (f32 by default).
- ``int8``: edgecv-onnx's static QDQ export (its calibration on ``--calib`` images through edgecv's
  own preprocessing, its float head) makes a QDQ ONNX, which is converted as it is: OpenVINO runs the
  QuantizeLinear/DequantizeLinear pairs as INT8 kernels. Needs ``edgecv-openvino[export]``.

The metadata the core reads (names, imgsz, task...) and what records how the folder was made
(``edgecv_precision``, ``edgecv_input``, ``edgecv_source`` and its sha256, versions; INT8: the
calibration) are stored twice: as rt_info ``edgecv`` in the .xml, and in ``metadata.yaml``, the
layout of Ultralytics' OpenVINO export, so either tool reads the other's folder.

The IR is written in a temporary folder, loaded back and checked, then each file is copied into
the output under a fresh temporary name and renamed (weights first).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import openvino as ov
import yaml

from edgecv.backend import (
    BackendError,
    ConfigError,
    ExportOptions,
    ModelError,
    ModelSpec,
    atomic_target,
    parse_metadata_value,
    pip_hint,
    sha256_of,
    shapes_match,
)
from edgecv_openvino import metadata, modelfiles
from edgecv_openvino.session import OpenVinoSession, read_model

METADATA = modelfiles.METADATA_FILE
EXPORT_HINT = f"{pip_hint('edgecv-openvino[export]')} (it adds edgecv-onnx[export])."


def export(source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    """Convert the ONNX model ``source`` into an IR folder at ``output``; return the folder."""
    int8 = str(options.get("precision") or "").lower() == "int8"
    onnx_export = _onnx_export(required=int8)
    settings = ExportOptions.parse(
        options,
        target="OpenVINO",
        calib_methods=onnx_export.CALIB_METHODS if onnx_export else ("percentile",),
        default_calib_size=onnx_export.DEFAULT_CALIB_SIZE if onnx_export else 64,
        # INT8 passes edgecv-onnx's own switches on to it.
        extra=("optimize", "float_last_convs") if int8 else (),
    )
    if source.suffix.lower() != ".onnx" or not source.is_file():
        raise ModelError(
            f"{source} is not an .onnx file", "edgecv export --to openvino converts ONNX models."
        )
    target = _target_folder(source, output, settings.precision)

    from edgecv import load

    with tempfile.TemporaryDirectory(prefix="edgecv-openvino-") as temporary:
        work = Path(temporary)
        graph = source
        if onnx_export is not None and int8:
            graph = work / "model_int8.onnx"
            onnx_export.export(source, graph, options)  # reports its stages through options' progress
        # Read by this backend: the names, input size and recipe recorded are the ones inference uses.
        with load(graph, backend="openvino", imgsz=settings.imgsz, cache_dir=False) as reference:
            spec = reference.spec
        with settings.progress("OpenVINO conversion", 1) as advance:
            model = read_model(ov.Core(), modelfiles.ModelFiles(graph, None, None))
            model.reshape(_static_shape(spec))  # a dynamic ONNX becomes a static IR at --imgsz
            data = _metadata(source, spec, settings.precision)
            for key, value in data.items():
                model.set_rt_info(value, [metadata.EDGECV_SECTION, key])
            # A plain name here (OpenVINO takes UTF-8 paths); the IR gets the source's name when installed.
            xml = work / "ir" / "model.xml"
            ov.save_model(model, str(xml), compress_to_fp16=settings.precision == "fp16")
            name = _utf8(source.name)
            header = f"# OpenVINO IR exported by edgecv-openvino from {name} ({settings.precision})\n"
            (xml.parent / METADATA).write_text(header + _yaml(data), encoding="utf-8")
            advance(1)
        _verify(xml.parent, spec, source)
        _install(xml.parent, target, source.stem)
    return target


def _onnx_export(*, required: bool) -> ModuleType | None:
    """edgecv-onnx's exporter (INT8 needs it; otherwise only its calibration settings are borrowed)."""
    try:
        return importlib.import_module("edgecv_onnx.export")
    except ImportError as exc:
        if not required:
            return None
        raise BackendError(
            "INT8 OpenVINO export quantizes with edgecv-onnx's export, which is not installed", EXPORT_HINT
        ) from exc


def _target_folder(source: Path, output: Path, precision: str) -> Path:
    """``output`` itself, or ``output/<stem>[_<precision>]_openvino_model`` when it is a folder
    holding other things than this model's IR."""
    if output.exists() and not output.is_dir():
        raise ConfigError(
            f"The output {output} is a file; OpenVINO export writes a folder",
            "Pass a folder path with -o, e.g. -o yolov8n_openvino_model.",
        )
    if output.is_dir() and any(output.iterdir()) and not (output / f"{source.stem}.xml").is_file():
        label = "" if precision == "fp32" else f"_{precision}"
        return output / f"{source.stem}{label}_openvino_model"
    return output


def _static_shape(spec: ModelSpec) -> list[int]:
    height, width = spec.imgsz
    channels = next((d for d in spec.input.shape[1:] if d in (1, 3)), 3)
    return [1, channels, height, width] if spec.input.layout == "NCHW" else [1, height, width, channels]


def _versions() -> dict[str, str]:
    import edgecv
    import edgecv_openvino

    versions = {"edgecv": edgecv.__version__, "edgecv-openvino": edgecv_openvino.__version__}
    for distribution in ("openvino", "edgecv-onnx", "onnxruntime"):
        try:
            versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _metadata(source: Path, spec: ModelSpec, precision: str) -> dict[str, str]:
    """The source's metadata strings (an INT8 graph's include its calibration) plus edgecv's own."""
    data = dict(spec.metadata)
    data.update(
        {
            "task": spec.task,
            "imgsz": str(list(spec.imgsz)),
            "names": repr(dict(enumerate(spec.names))),
            "edgecv_format": "openvino",
            "edgecv_precision": precision,
            "edgecv_input": json.dumps(
                {
                    "name": spec.input.name,
                    "shape": _static_shape(spec),
                    "dtype": spec.input.dtype,
                    "layout": spec.input.layout,
                    "color": spec.input.color,
                    "scale": spec.input.scale,
                    "letterbox": spec.input.letterbox,
                    "pad_value": spec.input.pad_value,
                }
            ),
            "edgecv_source": source.name,
            "edgecv_source_sha256": sha256_of(source),
            "edgecv_versions": json.dumps(_versions()),
        }
    )
    # OpenVINO and the YAML file take UTF-8 text: a non-UTF-8 file name keeps its other characters.
    return {key: _utf8(value) for key, value in data.items()}


def _utf8(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _yaml(data: Mapping[str, str]) -> str:
    """``metadata.yaml`` as Ultralytics writes it: values as YAML (names a map, imgsz a list)."""
    values = {key: _plain(parse_metadata_value(value, key)) for key, value in data.items()}
    text: str = yaml.safe_dump(values, sort_keys=False, allow_unicode=True, width=1 << 16)
    return text


def _plain(value: Any) -> Any:
    """What ``yaml.safe_dump`` writes: tuples as lists, anything unusual as its text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k if isinstance(k, (str, int)) else str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _verify(folder: Path, spec: ModelSpec, source: Path) -> None:
    """Load the IR as users will and check its outputs have the source's shapes."""
    loaded = OpenVinoSession.open(folder, {"cache_dir": False})
    ours = loaded.spec.outputs
    loaded.close()
    if not shapes_match(ours, spec.outputs):
        ours_shapes, theirs = [o.shape for o in ours], [o.shape for o in spec.outputs]
        raise ModelError(
            f"The IR made from {source.name} has outputs {ours_shapes}; the ONNX model has {theirs}",
            "Update openvino (pip install -U openvino) or export the ONNX model again.",
        )


def _install(work: Path, target: Path, stem: str) -> None:
    """Copy ``model.bin``, ``model.xml`` (as ``<stem>.bin``/``.xml``) and ``metadata.yaml`` into
    ``target``, each under a fresh temporary name then renamed, weights first."""
    target.mkdir(parents=True, exist_ok=True)
    for name, final in (("model.bin", f"{stem}.bin"), ("model.xml", f"{stem}.xml"), (METADATA, METADATA)):
        with atomic_target(target / final) as partial:
            shutil.copyfile(work / name, partial)

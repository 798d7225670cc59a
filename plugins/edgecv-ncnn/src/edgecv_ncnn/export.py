"""``edgecv export --to ncnn``: ONNX -> an NCNN model folder, through the pnnx executable.

The folder holds ``model.ncnn.param``, ``model.ncnn.bin`` and ``metadata.yaml`` (Ultralytics' layout,
so either tool reads the other's): class names, ``imgsz``, the input recipe edgecv uses (``edgecv_input``),
precision, the source's name and sha256, and the tool versions.

pnnx runs in a temporary folder on a copy of the source, because it writes half a dozen side files
(``*.pnnx.*``, ``*_pnnx.py``, ``*.pnnxsim.onnx``) next to its input; only the three files above are
moved to the output. Precision: ``fp32``; ``fp16`` (pnnx ``fp16=1``: half-size .bin, weights in fp16);
``int8`` (ncnn2table on calibration images prepared by edgecv's own preprocessing, then ncnn2int8;
both tools must be installed, see ``tools``). The source is read with edgecv's ONNX backend, so the
names, input size and preprocessing recorded are exactly the ones inference uses.

Progress (``options["progress"]``, read as ``ExportOptions.progress``) is told of the stages: the
pnnx conversion, and for INT8 the calibration tensors (n/N images), ncnn2table and ncnn2int8.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecv.backend import (
    ConfigError,
    ExportOptions,
    ModelError,
    ModelSpec,
    atomic_target,
    parse_metadata_value,
    read_image,
    shapes_match,
)
from edgecv_ncnn import metadata as metafile
from edgecv_ncnn import paramfile, tools
from edgecv_ncnn.session import NcnnSession

if TYPE_CHECKING:
    from edgecv import Model

CALIB_METHODS = ("kl", "aciq", "eq")  # ncnn2table's methods; kl is its default
DEFAULT_CALIB_SIZE = 64
PARAM, BIN = "model.ncnn.param", "model.ncnn.bin"
PNNX_HINT = (
    "pnnx converts float32 ONNX models with standard operators (opset 11+): export the model again "
    "without dynamic axes, or try another pnnx version (pip install --no-deps -U pnnx)."
)


def export(source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    """Convert the ONNX model ``source`` into an NCNN model folder at ``output``; return the folder."""
    settings = ExportOptions.parse(
        options, target="NCNN", calib_methods=CALIB_METHODS, default_calib_size=DEFAULT_CALIB_SIZE
    )
    if source.suffix.lower() != ".onnx" or not source.is_file():
        raise ModelError(f"{source} is not an .onnx file", "edgecv export --to ncnn converts ONNX models.")
    # Missing tools fail before any work is done.
    int8_tools = tools.require_int8_tools() if settings.precision == "int8" else None
    pnnx = tools.require_pnnx()
    target = _target_folder(source, output)

    from edgecv import load

    reference = load(source, backend="onnx", imgsz=settings.imgsz)  # raises for a bad file or size
    spec = reference.spec
    if spec.input.dtype != "float32" or spec.input.layout != "NCHW":
        raise ModelError(
            f"{source.name} takes a {spec.input.dtype} {spec.input.layout} input; "
            "NCNN export converts float32 NCHW models",
            "Export from the float32 ONNX model (not a quantized one).",
        )
    with tempfile.TemporaryDirectory(prefix="edgecv-ncnn-") as temporary:
        work = Path(temporary)
        with settings.progress("pnnx conversion", 1) as advance:
            _convert(pnnx, source, work, spec, fp16=settings.precision == "fp16")
            advance(1)
        details: dict[str, Any] = {}
        if int8_tools is not None:
            _quantize(work, reference, settings, int8_tools, details)
        graph = paramfile.read_graph(work / PARAM)
        data = _metadata(source, spec, settings, graph, pnnx, details)
        header = f"NCNN model exported by edgecv-ncnn from {source.name} ({settings.precision})"
        (work / paramfile.METADATA_FILE).write_text(metafile.dump(data, header), encoding="utf-8")
        _verify(work, spec, source)
        _install(work, target)
    return target


def _target_folder(source: Path, output: Path) -> Path:
    """``output`` itself, or ``output/<stem>_ncnn_model`` when it is a folder holding other things."""
    if output.exists() and not output.is_dir():
        raise ConfigError(
            f"The output {output} is a file; NCNN export writes a folder",
            "Pass a folder path with -o, e.g. -o yolov8n_ncnn_model.",
        )
    if output.is_dir() and any(output.iterdir()) and not any(output.glob("*.param")):
        return output / f"{source.stem}_ncnn_model"
    return output


def _convert(pnnx: Path, source: Path, work: Path, spec: ModelSpec, *, fp16: bool) -> None:
    shutil.copyfile(source, work / "model.onnx")
    height, width = spec.imgsz
    channels = spec.input.shape[1] or 3
    command: list[str | Path] = [
        pnnx,
        "model.onnx",
        f"inputshape=[1,{channels},{height},{width}]",
        f"fp16={1 if fp16 else 0}",
        f"ncnnparam={PARAM}",
        f"ncnnbin={BIN}",
        "ncnnpy=model_ncnn.py",
        "pnnxparam=model.pnnx.param",
        "pnnxbin=model.pnnx.bin",
        "pnnxpy=model_pnnx.py",
        "pnnxonnx=model.pnnx.onnx",
    ]
    output = tools.run(command, work, f"pnnx could not convert {source.name}", PNNX_HINT)
    if not (work / PARAM).is_file() or not (work / BIN).is_file():
        raise ModelError(f"pnnx wrote no NCNN model for {source.name}: {tools.last_lines(output)}", PNNX_HINT)


def _quantize(
    work: Path,
    reference: Model,
    settings: ExportOptions,
    int8_tools: tuple[Path, Path],
    details: dict[str, Any],
) -> None:
    """ncnn2table on edgecv-preprocessed tensors (.npy, ``type=1``), then ncnn2int8."""
    assert settings.calib is not None
    table_tool, int8_tool = int8_tools
    files = settings.calibration_files()  # --calib-size of them, from --calib-subset
    folder = work / "calib"
    folder.mkdir()
    names = []
    with settings.progress("calibration images", len(files)) as advance:
        for index, file in enumerate(files):
            tensor, _ = reference.preprocess(read_image(file))
            name = f"calib/{index:05d}.npy"
            # ncnn2table reads float32 C-order [c, h, w] arrays, the letterboxed tensor without its batch.
            np.save(work / name, np.ascontiguousarray(tensor[0], dtype=np.float32))
            names.append(name)
            advance(1)
    # Relative paths: ncnn2table reads at most 255 characters per line and no spaces.
    (work / "calib.txt").write_text("\n".join(names) + "\n")
    height, width = reference.spec.imgsz
    channels = reference.spec.input.shape[1] or 3
    hint = "Check the calibration images and the ncnn tools' version (they must match the ncnn wheel's)."
    with settings.progress("ncnn2table calibration", 1) as advance:
        _calibrate(work, table_tool, settings, (width, height, channels), hint)
        advance(1)
    if not (work / "model.table").is_file():
        raise ModelError("ncnn2table wrote no calibration table", hint)
    with settings.progress("ncnn2int8 conversion", 1) as advance:
        tools.run(
            [int8_tool, PARAM, BIN, "int8.ncnn.param", "int8.ncnn.bin", "model.table"],
            work,
            "ncnn2int8 (INT8 conversion)",
            hint,
        )
        advance(1)
    for produced, final in (("int8.ncnn.param", PARAM), ("int8.ncnn.bin", BIN)):
        if not (work / produced).is_file():
            raise ModelError(f"ncnn2int8 wrote no {produced}", hint)
        os.replace(work / produced, work / final)
    details["edgecv_calibration"] = {
        "images": len(files),
        "folder": str(settings.calib),
        "subset": settings.calib_subset,
        "method": settings.calib_method,
        "preprocessing": "edgecv letterbox (the pipeline's own), saved as .npy (ncnn2table type=1)",
        "ncnn2table": str(table_tool),
        "ncnn2int8": str(int8_tool),
    }


def _calibrate(
    work: Path, table_tool: Path, settings: ExportOptions, shape: tuple[int, int, int], hint: str
) -> None:
    """ncnn2table: the calibration table ``model.table`` from the tensors listed in calib.txt."""
    width, height, channels = shape
    tools.run(
        [
            table_tool,
            PARAM,
            BIN,
            "calib.txt",
            "model.table",
            f"shape=[{width},{height},{channels}]",
            "type=1",
            f"method={settings.calib_method}",
            f"thread={os.cpu_count() or 1}",
        ],
        work,
        "ncnn2table (INT8 calibration)",
        hint,
    )


def _versions(pnnx: Path) -> dict[str, str]:
    import edgecv
    import edgecv_ncnn

    versions = {"edgecv": edgecv.__version__, "edgecv-ncnn": edgecv_ncnn.__version__}
    for distribution in ("ncnn", "onnxruntime"):
        try:
            versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[distribution] = "not installed"
    versions["pnnx"] = tools.pnnx_version(pnnx)
    return versions


def _metadata(
    source: Path,
    spec: ModelSpec,
    settings: ExportOptions,
    graph: paramfile.ParamGraph,
    pnnx: Path,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    # The source's own keys first (Ultralytics: description, author, stride, task, args...), as values.
    data: dict[str, Any] = {key: parse_metadata_value(value) for key, value in spec.metadata.items()}
    height, width = spec.imgsz
    data.update(
        {
            "task": spec.task,
            "batch": 1,
            "imgsz": [height, width],
            "names": dict(enumerate(spec.names)),
            "edgecv_format": "ncnn",
            "edgecv_precision": settings.precision,
            "edgecv_input": {
                "name": graph.inputs[0],
                "shape": [1, spec.input.shape[1] or 3, height, width],
                "dtype": "float32",
                "layout": spec.input.layout,
                "color": spec.input.color,
                "scale": spec.input.scale,
                "letterbox": spec.input.letterbox,
                "pad_value": spec.input.pad_value,
            },
            "edgecv_outputs": list(graph.outputs),
            "edgecv_source": source.name,
            "edgecv_source_sha256": spec.sha256,
            "edgecv_versions": _versions(pnnx),
            **details,
        }
    )
    return data


def _verify(work: Path, spec: ModelSpec, source: Path) -> None:
    """Load the result as users will and check its outputs have the source's shapes."""
    loaded = NcnnSession.open(work, {})
    ours = loaded.spec.outputs
    loaded.close()
    if not shapes_match(ours, spec.outputs):
        ours_shapes, theirs = [o.shape for o in ours], [o.shape for o in spec.outputs]
        raise ModelError(
            f"The NCNN model pnnx made from {source.name} has outputs {ours_shapes}; "
            f"the ONNX model has {theirs}",
            PNNX_HINT,
        )


def _install(work: Path, target: Path) -> None:
    """Copy the three files into ``target``, each under a fresh temporary name then renamed, weights first."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (BIN, PARAM, paramfile.METADATA_FILE):
        with atomic_target(target / name) as partial:
            shutil.copyfile(work / name, partial)

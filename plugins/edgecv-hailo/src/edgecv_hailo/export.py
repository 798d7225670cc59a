"""``edgecv export --to hailo``: an ONNX model -> ``.hef`` + its sidecar, through Hailo's Dataflow Compiler.

    edgecv export --model yolov8n.onnx --to hailo --calib coco128/images -o yolov8n.hef
    edgecv export --model yolov8n.onnx --to hailo --calib images/ --hw-arch hailo8 -o out/

The Dataflow Compiler (``hailo_sdk_client``) runs on x86_64 Linux only and is not on PyPI (Hailo's
Developer Zone); without it the export is one error line saying where to get it. With it:

1. the calibration images go through edgecv's own letterbox into one ``(N, H, W, 3)`` uint8 array,
   the pixels the HEF will be given (N x H x W x 3 bytes: 64 images at 640 take 75 MiB);
2. ``translate_onnx_model``: a YOLOv8/YOLO11 graph is cut at its six head convolutions
   (``nms_config.find_head``), anything else is translated whole, without on-chip NMS (a warning
   says why);
3. a model script: the /255 scaling inside the HEF (it takes uint8 pixels), every calibration
   image, and for a YOLOv8 head sigmoid class outputs + ``nms_postprocess(meta_arch=yolov8)``;
4. ``optimize`` (always INT8: Hailo chips run 8-bit networks) and ``compile`` for ``--hw-arch``.

The HEF is written atomically; ``sidecar.write_sidecar`` then records the source's metadata (names,
imgsz, task...), ``hw_arch``, the source's SHA-256 and whether the HEF carries NMS.

Options (``--option KEY=VALUE``): the on-chip NMS's ``nms_conf`` (0.2), ``nms_iou`` (0.45, edgecv's
default), ``nms_max_per_class`` (100) and ``nms_engine`` (cpu or nn_core), fixed in the HEF.
"""

from __future__ import annotations

import importlib.util
import json
import numbers
import platform
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.backend import (
    BackendError,
    ConfigError,
    EdgecvError,
    ExportOptions,
    ModelError,
    Progress,
    atomic_target,
    one_line,
    pip_hint,
    positive_int,
    working_directory,
)
from edgecv_hailo.nms_config import NmsSettings, YoloV8Head

if TYPE_CHECKING:
    import hailo_sdk_client
    import onnx

    from edgecv import Model

TARGET = "Hailo"
HW_ARCHS = ("hailo8l", "hailo8", "hailo8r", "hailo15h", "hailo15m", "hailo15l", "hailo10h")
"""The ``hw_arch`` names the Dataflow Compiler knows (3.x: the Hailo-8 family; 5.x: Hailo-15/10)."""
DEFAULT_HW_ARCH = "hailo8l"
"""The Raspberry Pi AI Kit's chip; a hailo8l HEF also runs on a Hailo-8 (not the other way round)."""
CALIB_METHODS = ("dfc",)
"""The Dataflow Compiler's own optimization: edgecv offers no choice of calibrator."""
DEFAULT_CALIB_SIZE = 64
"""The Dataflow Compiler's default calibration set size."""
MAX_CALIB_BYTES = 2 << 30
"""The calibration array's ceiling (the compiler takes it whole): 2 GiB is 1747 images at 640."""
NMS_ENGINES = ("cpu", "nn_core")
MAX_PROPOSALS = 1000
"""Per class; the session holds classes x this x 5 floats per frame in flight."""
EXTRA_OPTIONS = ("hw_arch", "nms_conf", "nms_iou", "nms_max_per_class", "nms_engine")
DEFAULT_NMS = NmsSettings(scores_th=0.2, iou_th=0.45, max_per_class=100, engine="cpu")
DEVELOPER_ZONE = "https://hailo.ai/developer-zone/"
DFC_DISTRIBUTION = "hailo_dataflow_compiler"
EXPORT_HINT = (
    f"{pip_hint('edgecv-hailo[export]')} (it adds onnx and edgecv-onnx, which read the model first)."
)


T = TypeVar("T")


class DataflowCompiler(Protocol):
    """The part of ``hailo_sdk_client`` this module uses (typed by ``typings/hailo_sdk_client``).

    The real module satisfies it (mypy checks that in ``load_compiler``); tests install a fake one.
    """

    @property
    def ClientRunner(self) -> type[hailo_sdk_client.ClientRunner]: ...


@attrs.frozen
class HailoRequest:
    hw_arch: str
    nms: NmsSettings


def export(source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    """Compile ``source`` into a HEF at ``output`` (a ``.hef`` file, or a folder for ``<stem>.hef``)."""
    settings, request = parse(options)
    if source.suffix.lower() != ".onnx" or not source.is_file():
        raise ModelError(f"{source} is not an .onnx file", "edgecv export --to hailo compiles ONNX models.")
    target = output_path(source, output)
    files = settings.calibration_files()  # mistakes in the cheap things first, on any machine
    require_export_extra()
    from edgecv import load

    with load(source, backend="onnx", imgsz=settings.imgsz) as reference:  # a readable, runnable ONNX
        check_calibration_memory(len(files), reference.spec.imgsz)
        head, reason = analyse(source, reference)
        client = load_compiler()
        calib = calibration_array(reference, files, settings.progress)
        with tempfile.TemporaryDirectory(prefix="edgecv-hailo-") as work:
            hef = compile_hef(
                client, source.absolute(), reference, head, reason, calib, request, settings, Path(work)
            )
        with atomic_target(target) as partial:
            partial.write_bytes(hef)
        from edgecv_hailo.sidecar import write_sidecar

        write_sidecar(target, sidecar_metadata(source, reference, head, request, settings, files, client))
    return target


def parse(options: Mapping[str, Any]) -> tuple[ExportOptions, HailoRequest]:
    asked = options.get("precision")
    if str(asked or "int8").lower() != "int8":
        raise ConfigError(
            f"Hailo chips run 8-bit networks: --precision {asked} has no HEF form",
            "Leave --precision out (or pass int8): the Dataflow Compiler quantizes with --calib images.",
        )
    settings = ExportOptions.parse(
        {**options, "precision": "int8"},
        target=TARGET,
        calib_methods=CALIB_METHODS,
        default_calib_size=DEFAULT_CALIB_SIZE,
        precisions=("int8",),
        extra=EXTRA_OPTIONS,
    )
    raw = settings.raw
    hw_arch = str(raw.get("hw_arch") or DEFAULT_HW_ARCH).lower()
    if hw_arch not in HW_ARCHS:
        raise ConfigError(
            f"Unknown --hw-arch {raw.get('hw_arch')!r}",
            f"Pass --hw-arch {', '.join(HW_ARCHS)} (hailo8l: Raspberry Pi AI Kit; hailo8: AI HAT+ 26 TOPS).",
        )
    engine = str(raw.get("nms_engine") or DEFAULT_NMS.engine).lower()
    if engine not in NMS_ENGINES:
        raise ConfigError(
            f"Unknown nms_engine {raw.get('nms_engine')!r}", f"Pass nms_engine={' or '.join(NMS_ENGINES)}."
        )
    per_class = positive_int(raw, "nms_max_per_class", "Hailo export") or DEFAULT_NMS.max_per_class
    if per_class > MAX_PROPOSALS:
        raise ConfigError(
            f"Hailo export nms_max_per_class must be at most {MAX_PROPOSALS}, got {per_class}",
            "Pass e.g. nms_max_per_class=100.",
        )
    nms = NmsSettings(
        scores_th=_fraction(raw, "nms_conf", DEFAULT_NMS.scores_th, allow_one=False),
        iou_th=_fraction(raw, "nms_iou", DEFAULT_NMS.iou_th, allow_one=True),
        max_per_class=per_class,
        engine=engine,
    )
    return settings, HailoRequest(hw_arch=hw_arch, nms=nms)


def _fraction(raw: Mapping[str, Any], name: str, default: float, *, allow_one: bool) -> float:
    value = raw.get(name, default)
    upper = "1 included" if allow_one else "1 excluded"
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 < float(value) <= 1.0
        or (float(value) == 1.0 and not allow_one)
    ):
        raise ConfigError(
            f"Hailo export {name} must be a number above 0 and up to 1 ({upper}), got {value!r}",
            f"Pass e.g. {name}={default}.",
        )
    return float(value)


def output_path(source: Path, output: Path) -> Path:
    if output.is_dir():
        return output / f"{source.stem}.hef"
    if output.suffix.lower() != ".hef":
        raise ConfigError(
            f"{output.name} is not a HEF file name",
            f"Pass -o {output.with_suffix('.hef')} or an existing folder.",
        )
    return output


def check_calibration_memory(count: int, size: tuple[int, int]) -> None:
    """The compiler takes the calibration images as one array: refuse one that would not fit."""
    height, width = size
    needed = count * height * width * 3
    if needed > MAX_CALIB_BYTES:
        most = MAX_CALIB_BYTES // (height * width * 3)
        raise ConfigError(
            f"{count} calibration images at {height}x{width} take {needed / 2**30:.1f} GiB (the Dataflow "
            f"Compiler takes them as one array; edgecv's ceiling is {MAX_CALIB_BYTES >> 30} GiB)",
            f"Pass --calib-size {most} or fewer (the compiler's default is {DEFAULT_CALIB_SIZE}).",
        )


def analyse(source: Path, reference: Model) -> tuple[YoloV8Head | None, str]:
    """The YOLOv8 head to cut at (``None``: compile the whole graph) and why there is none."""
    model = read_graph(source)
    from edgecv_onnx import graph

    if graph.is_quantized(model):
        raise ModelError(
            f"{source.name} is already quantized",
            "Export from the float32 model: the Dataflow Compiler quantizes it with --calib images.",
        )
    graph.fix_input_size(model, reference.spec.imgsz)
    from edgecv_hailo import nms_config

    spec = reference.spec
    return nms_config.find_head(model, spec.imgsz, len(spec.names), spec.arch)


def require_export_extra() -> None:
    """The ``export`` extra is installed (ONNX Runtime through edgecv-onnx runs the source once, the
    ``onnx`` package reads its graph), or one error naming it."""
    missing = [name for name in ("onnx", "edgecv_onnx") if importlib.util.find_spec(name) is None]
    if missing:
        raise BackendError(
            f"Exporting to Hailo needs {' and '.join(missing)}, not installed here", EXPORT_HINT
        )


def read_graph(source: Path) -> onnx.ModelProto:
    import onnx

    try:
        return onnx.load(str(source))
    except Exception as exc:  # protobuf's DecodeError, a missing external-data file...
        raise ModelError(
            f"Cannot read {source.name} as ONNX: {one_line(exc)}", "Export the ONNX model again."
        ) from exc


def load_compiler() -> DataflowCompiler:
    """``hailo_sdk_client``, or one error that says where to get it (and that it is x86_64 Linux only)."""
    system, machine = platform.system(), platform.machine().lower()
    try:
        import hailo_sdk_client
    except ImportError as exc:
        if system != "Linux" or machine not in ("x86_64", "amd64"):
            raise BackendError(
                "The Hailo Dataflow Compiler runs on x86_64 Linux only, and this machine is "
                f"{system} {machine}",
                "Export on an x86_64 Linux machine with the compiler, then copy the .hef and its .hef.json "
                "here (edgecv runs HEFs on any machine with HailoRT).",
            ) from exc
        raise BackendError(
            "Exporting to Hailo needs the Hailo Dataflow Compiler (hailo_sdk_client), which is not installed",
            f"It is not on PyPI: download its wheel from Hailo's Developer Zone ({DEVELOPER_ZONE}, a free "
            "account) and pip install it here (x86_64 Linux; its release notes list the Python versions).",
        ) from exc
    except Exception as exc:  # it imports TensorFlow and more: a broken install fails in many ways
        raise BackendError(
            f"The Hailo Dataflow Compiler failed to import: {one_line(exc)}",
            "Reinstall it in a fresh virtual environment as Hailo's install guide says (--debug shows why).",
        ) from exc
    compiler: DataflowCompiler = hailo_sdk_client
    return compiler


def calibration_array(model: Model, files: Sequence[Path], progress: Progress) -> npt.NDArray[np.uint8]:
    """The calibration images as the HEF takes them: ``(N, H, W, 3)`` uint8 in the model's colour
    order, letterboxed exactly as ``edgecv predict`` letterboxes (``Model.preprocess``)."""
    from edgecv.backend import read_image

    height, width = model.spec.imgsz
    batch = np.empty((len(files), height, width, 3), np.uint8)
    with progress("calibration images", len(files)) as advance:
        for index, file in enumerate(files):
            batch[index] = hef_pixels(model, read_image(file))
            advance(1)
    return batch


def hef_pixels(model: Model, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``model``'s input tensor for ``image`` back as the 0..255 pixels it was scaled from (exact:
    the float tensor holds ``pixel * scale``), NHWC, the way the HEF takes them."""
    tensor, _ = model.preprocess(image)
    spec = model.spec.input
    planes = np.asarray(tensor[0], dtype=np.float64)
    pixels = planes.transpose(1, 2, 0) if spec.layout == "NCHW" else planes
    if pixels.shape[-1] != 3:
        raise ModelError(
            f"{model.spec.path.name} takes {pixels.shape[-1]}-channel images; "
            "Hailo export takes 3-channel models",
            "Export a model with an RGB or BGR image input.",
        )
    return np.clip(np.rint(pixels / spec.scale), 0, 255).astype(np.uint8)


def compile_hef(
    client: DataflowCompiler,
    source: Path,
    reference: Model,
    head: YoloV8Head | None,
    reason: str,
    calib: npt.NDArray[np.uint8],
    request: HailoRequest,
    settings: ExportOptions,
    work: Path,
) -> bytes:
    """Translate, optimize and compile ``source`` with the Dataflow Compiler; the HEF's bytes."""
    spec = reference.spec.input
    height, width = spec.size
    shape = [1, 3, height, width] if spec.layout == "NCHW" else [1, height, width, 3]
    progress = settings.progress
    if head is None:
        warnings.warn(
            f"{source.name}: no on-chip NMS in the HEF ({reason}); the whole graph is compiled and its "
            "outputs are decoded on the host",
            stacklevel=3,
        )
    with working_directory(work):
        runner = _dfc("start for " + request.hw_arch, lambda: client.ClientRunner(hw_arch=request.hw_arch))
        stage = "translate" if head is not None else "translate (whole graph: no on-chip NMS)"
        with progress(stage, 1) as advance:
            _dfc(
                "translate " + source.name,
                lambda: runner.translate_onnx_model(
                    str(source),
                    _net_name(source),
                    start_node_names=[spec.name],
                    end_node_names=head.end_nodes if head is not None else None,
                    net_input_shapes={spec.name: shape},
                ),
            )
            advance(1)
        script = _script(runner, head, reference, len(calib), request, work)
        _dfc("load the model script", lambda: runner.load_model_script(script))
        with progress(f"optimize (INT8, {len(calib)} images)", 1) as advance:
            _dfc("optimize (quantize) the network", lambda: runner.optimize(calib))
            advance(1)
        with progress(f"compile for {request.hw_arch}", 1) as advance:
            hef = _dfc("compile the network for " + request.hw_arch, runner.compile)
            advance(1)
    if not isinstance(hef, bytes | bytearray) or not hef:
        raise BackendError(
            "The Dataflow Compiler's compile() returned no HEF", "Report the compiler version."
        )
    return bytes(hef)


def _script(
    runner: hailo_sdk_client.ClientRunner,
    head: YoloV8Head | None,
    reference: Model,
    count: int,
    request: HailoRequest,
    work: Path,
) -> str:
    from edgecv_hailo import nms_config

    scale = reference.spec.input.scale
    if head is None:
        return nms_config.model_script(scale=scale, calib_count=count)
    hn = _dfc("describe the translated network", runner.get_hn_dict)
    layers = nms_config.hn_layers(hn, head.end_nodes)
    config = work / "nms_config.json"
    if '"' in str(config) or "\n" in str(config):
        raise BackendError(
            f"The temporary folder {work} has a quote or line break in its name",
            "Set TMPDIR to a plain path.",
        )
    settings = nms_config.nms_config(head, layers, reference.spec.imgsz, request.nms)
    config.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return nms_config.model_script(
        scale=scale,
        calib_count=count,
        class_layers=[layers[level.cls] for level in head.levels],
        config=config,
        engine=request.nms.engine,
    )


def _dfc(what: str, call: Callable[[], T]) -> T:
    """``call()``, its failure as one error line (the compiler's own log above it says more)."""
    try:
        return call()
    except EdgecvError:
        raise
    except Exception as exc:
        raise BackendError(
            f"The Dataflow Compiler could not {what}: {one_line(exc) or type(exc).__name__}",
            "Its log above has the details; --debug shows the traceback.",
        ) from exc


def _net_name(source: Path) -> str:
    """The network's name in the HEF: the file's stem in the letters the compiler takes."""
    name = re.sub(r"\W", "_", source.stem, flags=re.ASCII).strip("_")[:64] or "model"
    return name if not name[0].isdigit() else f"model_{name}"


def sidecar_metadata(
    source: Path,
    reference: Model,
    head: YoloV8Head | None,
    request: HailoRequest,
    settings: ExportOptions,
    files: Sequence[Path],
    client: DataflowCompiler,
) -> dict[str, str]:
    """The source's metadata (names, imgsz, stride, task...) and how this HEF was made."""
    import edgecv
    import edgecv_hailo

    spec = reference.spec
    metadata = dict(spec.metadata)
    metadata.update(
        {
            "names": str(dict(enumerate(spec.names))),
            "imgsz": str(list(spec.imgsz)),
            "task": spec.task,
            "hw_arch": request.hw_arch,
            "precision": "int8",
            "nms": "by_class" if head is not None else "none",
            "source": source.name,
            "source_sha256": spec.sha256,
            "edgecv": edgecv.__version__,
            "edgecv_hailo": edgecv_hailo.__version__,
            "dataflow_compiler": _compiler_version(client),
            "calibration": json.dumps(
                {
                    "folder": str(settings.calib.resolve()) if settings.calib is not None else None,
                    "count": len(files),
                    "subset": settings.calib_subset,
                    "letterbox": spec.input.letterbox,
                    "color": spec.input.color,
                    "first": files[0].name,
                    "last": files[-1].name,
                }
            ),
        }
    )
    if head is not None:
        metadata["nms_config"] = json.dumps(attrs.asdict(request.nms))
    return metadata


def _compiler_version(client: DataflowCompiler) -> str:
    from importlib import metadata

    try:
        return metadata.version(DFC_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return str(getattr(client, "__version__", "unknown"))

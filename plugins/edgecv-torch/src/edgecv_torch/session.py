"""``TorchSession``: a PyTorch model behind edgecv's ``Session`` protocol (CPU, or CUDA in FP32/FP16).

Three file kinds, told apart by the entries of their zip archive before anything is loaded
(``archives.archive_kind``):

- an edgecv-torch checkpoint (``.pt``): ``checkpoint.load``, ``torch.load(weights_only=True)``;
  a pickled ``nn.Module`` (``torch.save(model)``) is refused there, never unpickled;
- a ``torch.export`` program (``.pt2``): ``torch.export.load``, once ``archives.check_exported``
  has vetted the archive (that loader is not safe as it is), with weights-only loads forced;
- TorchScript (``.torchscript``, or a ``.pt`` whose archive holds ``code/``): ``torch.jit.load``,
  torch's C++ loader (TorchScript code calls torch operators; its pickles are restricted to
  tensors and TorchScript classes). Trust TorchScript files as much as the code that made them.

Metadata (names, imgsz, stride, task) comes from the checkpoint, or from the archive's extra file
``config.txt`` (a JSON object, as Ultralytics writes for TorchScript). The output shapes are
learnt from one warm-up run at load time, which also proves the model runs on the chosen device.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from edgecv.backend import (
    ConfigError,
    ModelError,
    Outputs,
    SessionSpec,
    TensorSpec,
    check_options,
    imgsz_from_metadata,
    one_line,
    positive_int,
)
from edgecv_torch.archives import (
    MAX_METADATA_BYTES,
    SAVE_HINT,
    Kind,
    archive_kind,
    check_exported,
    register_operators,
    weights_only_loads,
)

KNOWN_OPTIONS = frozenset({"device", "half", "threads"})
"""``device``: ``cpu``, ``cuda`` or ``cuda:N`` (default: cuda when available, else cpu); ``half``:
FP16 on CUDA; ``threads``: torch's intra-op threads (``torch.set_num_threads``, process-wide)."""
METADATA_FILE = "config.txt"
"""The archive's extra file holding the model's metadata as a JSON object (Ultralytics' name)."""
DEFAULT_IMGSZ = (640, 640)


def _extra_metadata(raw: str, path: Path) -> dict[str, str]:
    """``config.txt`` as strings edgecv's spec reads (lists and dicts as Python literals)."""
    if not raw:
        return {}
    if len(raw) > MAX_METADATA_BYTES:
        raise ModelError(f"{path.name}: {METADATA_FILE} is larger than 1 MiB", "Export the model again.")
    try:
        values = json.loads(raw)
    except ValueError as exc:
        raise ModelError(
            f"{path.name}: {METADATA_FILE} is not JSON: {one_line(exc)}", "Export it again."
        ) from exc
    if not isinstance(values, dict):
        raise ModelError(f"{path.name}: {METADATA_FILE} is not a JSON object", "Export the model again.")
    return {str(key): value if isinstance(value, str) else repr(value) for key, value in values.items()}


def load_module(path: Path, kind: Kind, device: torch.device) -> tuple[Callable[..., Any], dict[str, str]]:
    """The callable model in ``path`` on ``device``, and its metadata."""
    if kind == "checkpoint":
        from edgecv_torch import checkpoint

        model = checkpoint.load(path)
        return model.to(device), dict(model.metadata)
    extra = {METADATA_FILE: ""}
    try:
        if kind == "exported":
            register_operators(check_exported(path))
            with weights_only_loads():
                program = torch.export.load(path, extra_files=extra)
            if device.type != "cpu":  # device arguments recorded at export time follow too
                from torch.export.passes import move_to_device_pass

                program = move_to_device_pass(program, device)
            module: Callable[..., Any] = program.module()
            size = _input_size(program)
        else:
            with warnings.catch_warnings():  # "torch.jit.load is deprecated": still the way to read it
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(  # type: ignore[no-untyped-call]
                    path, map_location=device, _extra_files=extra
                ).eval()
            size = None
    except ModelError:
        raise
    except Exception as exc:  # torch raises RuntimeError, pickle and zip errors for bad archives
        raise ModelError(f"torch cannot load {path.name}: {one_line(exc)}", SAVE_HINT) from exc
    raw = extra[METADATA_FILE]
    metadata = _extra_metadata(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw, path)
    if size is not None and "imgsz" not in metadata:
        metadata["imgsz"] = str(list(size))
    return module, metadata


def _input_size(program: torch.export.ExportedProgram) -> tuple[int, int] | None:
    """The (height, width) the program was exported for, when its one input is a static 4-D tensor."""
    inputs = set(program.graph_signature.user_inputs)
    shapes = [
        node.meta["val"].shape
        for node in program.graph.nodes
        if node.op == "placeholder" and node.name in inputs and isinstance(node.meta.get("val"), torch.Tensor)
    ]
    if len(shapes) != 1 or len(shapes[0]) != 4 or not all(isinstance(d, int) for d in shapes[0]):
        return None
    return int(shapes[0][2]), int(shapes[0][3])


def choose_device(value: object) -> torch.device:
    """``device`` as a torch device this machine has (default: the first GPU, else the CPU)."""
    if value is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hint = "Pass device=cpu, device=cuda or device=cuda:N."
    if not isinstance(value, str) or not (
        value == "cpu" or value == "cuda" or (value.startswith("cuda:") and value[5:].isdecimal())
    ):
        raise ConfigError(f"torch option device must be cpu, cuda or cuda:N, got {value!r}", hint)
    device = torch.device(value)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"torch device {value} is not available: "
                + ("no GPU is visible" if torch.version.cuda else "this torch is a CPU-only build"),
                "Pass device=cpu, or install a CUDA build of torch on a machine with an NVIDIA GPU.",
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"torch device {value} does not exist: {torch.cuda.device_count()} GPU(s) visible", hint
            )
    return device


def _outputs(result: Any) -> list[torch.Tensor]:
    """The model's result as a list of tensors (a tensor, or a tuple or list of them)."""
    items = list(result) if isinstance(result, (tuple, list)) else [result]
    if not items or not all(isinstance(item, torch.Tensor) for item in items):
        raise ModelError(
            f"The torch model returned {type(result).__name__}, not tensors",
            "edgecv runs models that return a tensor or a tuple of tensors.",
        )
    return items


class TorchSession:
    """A loaded torch model on ``device`` taking ``[1, 3, H, W]`` float32 RGB 0..1 tensors."""

    def __init__(
        self, module: Callable[..., Any], spec: SessionSpec, device: torch.device, half: bool
    ) -> None:
        self.module = module
        self._spec = spec
        self.device = device
        self.dtype = torch.float16 if half else torch.float32

    @classmethod
    def open(cls, path: Path, options: Mapping[str, Any]) -> TorchSession:
        check_options(options, KNOWN_OPTIONS, "torch")
        threads = positive_int(options, "threads", "torch")
        half = options.get("half", False)
        if not isinstance(half, bool):
            raise ConfigError(f"torch option half must be true or false, got {half!r}", "Pass half=true.")
        device = choose_device(options.get("device"))
        if half and device.type != "cuda":
            raise ConfigError(
                "torch option half (FP16) needs a CUDA device; the CPU runs torch models in float32",
                "Drop half=true, or pass device=cuda on a machine with an NVIDIA GPU.",
            )
        if threads is not None:
            torch.set_num_threads(threads)
        kind = archive_kind(path)
        module, metadata = load_module(path, kind, device)
        if half and isinstance(module, torch.nn.Module):
            module = module.half()
        height, width = imgsz_from_metadata(metadata) or DEFAULT_IMGSZ
        session = cls(module, SessionSpec(TensorSpec("images", (1, 3, height, width)), ()), device, half)
        try:
            outputs = session.run(np.zeros((1, 3, height, width), dtype=np.float32))
        except Exception as exc:  # a traced program bound to another device, size or dtype
            precision = " in FP16" if half else ""
            raise ModelError(
                f"{path.name} does not run on {device}{precision} at {height}x{width}: {one_line(exc)}",
                "Trace or export the model for this device and size, or load an edgecv-torch checkpoint.",
            ) from exc
        names = ["output0"] if len(outputs) == 1 else [f"output{i}" for i in range(len(outputs))]
        session._spec = SessionSpec(
            input=session._spec.input,
            outputs=tuple(TensorSpec(n, tuple(o.shape)) for n, o in zip(names, outputs, strict=True)),
            metadata=metadata,
            layout="NCHW",
            boxes_normalized=False,
        )
        return session

    @property
    def spec(self) -> SessionSpec:
        return self._spec

    def _tensor(self, tensor: npt.NDArray[Any]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(tensor)).to(self.device, self.dtype)

    def run(self, tensor: npt.NDArray[Any]) -> Outputs:
        with torch.inference_mode():
            results = _outputs(self.module(self._tensor(tensor)))
            return [r.float().cpu().numpy() for r in results]

    @property
    def bare(self) -> Callable[[npt.NDArray[Any]], object]:
        """What a hand-written torch script does per frame: the module call under inference_mode
        (waiting for the GPU, so a timer measures the work, not its launch)."""
        module, prepare = self.module, self._tensor
        cuda = self.device if self.device.type == "cuda" else None

        def call(tensor: npt.NDArray[Any]) -> object:
            with torch.inference_mode():
                result = module(prepare(tensor))
            if cuda is not None:
                torch.cuda.synchronize(cuda)
            return result

        return call

    def close(self) -> None:
        """Drop the module; on CUDA, hand its cached memory back to the driver."""
        self.module = _closed
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _closed(*_: Any) -> Any:
    raise ModelError("The torch session is closed", "Load the model again.")

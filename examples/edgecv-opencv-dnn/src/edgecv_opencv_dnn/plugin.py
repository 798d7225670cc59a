"""The hook implementations of the ``opencv-dnn`` backend (walked through in docs/writing-a-backend.md).

edgecv imports this module through the entry point in pyproject.toml, so it must stay cheap:
``cv2`` is imported inside ``edgecv_load``, the first moment the backend is actually used.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv import hookimpl
from edgecv.backends import Availability, BackendInfo
from edgecv.errors import BackendError, ConfigError, ModelError
from edgecv.spec import LoadedModel, ModelSpec, TensorSpec
from edgecv_opencv_dnn import onnxinfo

BACKEND = "opencv-dnn"
INSTALL_HINT = "pip install opencv-python-headless (4.8 or newer, with the dnn module)."
KNOWN_OPTIONS = frozenset({"threads"})


def check() -> Availability:
    """Cheap availability check: look for cv2 without importing it (``edgecv backends`` calls this)."""
    if importlib.util.find_spec("cv2") is None:
        return Availability(False, "OpenCV (cv2) is not installed", INSTALL_HINT)
    return Availability(True)


@hookimpl
def edgecv_register_backends(register: Callable[[BackendInfo], None]) -> None:
    register(
        BackendInfo(
            name=BACKEND,
            formats=(".onnx",),
            # Below edgecv-onnx (50): backend="auto" keeps choosing ONNX Runtime when both are installed.
            priority=10,
            check=check,
            description="OpenCV DNN module on the CPU (example third-party backend)",
            install_hint=INSTALL_HINT,
        )
    )


class DnnSession:
    """A ``cv2.dnn.Net`` with its input and output names bound once."""

    def __init__(self, net: Any, input_name: str, output_names: Sequence[str]) -> None:
        self.net = net
        self.input_name = input_name
        self.output_names = list(output_names)
        # setInput + forward are two calls on the net's shared state: serialize callers.
        self._lock = threading.Lock()

    def run(self, tensor: npt.NDArray[Any]) -> list[npt.NDArray[np.float32]]:
        with self._lock:
            self.net.setInput(np.ascontiguousarray(tensor, dtype=np.float32), self.input_name)
            outputs = self.net.forward(self.output_names)
        return [np.asarray(output, dtype=np.float32) for output in outputs]


@hookimpl
def edgecv_load(backend: str, path: Path, options: Mapping[str, Any]) -> LoadedModel | None:
    if backend != BACKEND:
        return None  # another plugin's backend
    unknown = set(options) - KNOWN_OPTIONS
    if unknown:
        raise ConfigError(
            f"Unknown opencv-dnn option(s): {', '.join(sorted(unknown))}",
            f"Known options: {', '.join(sorted(KNOWN_OPTIONS))}.",
        )
    threads = options.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer, got {threads!r}", "Pass e.g. threads=4.")
    if path.is_dir():
        raise ModelError(f"{path} is a folder, not an .onnx file", "Pass the .onnx file itself.")
    import cv2  # lazy: importing the runtime is the load's cost, not discovery's

    if not hasattr(cv2, "dnn"):
        raise BackendError(f"This OpenCV build ({cv2.__version__}) has no dnn module", INSTALL_HINT)
    if threads is not None:
        # OpenCV has one thread pool per process: this applies to every cv2 call, not just this model.
        cv2.setNumThreads(threads)
    try:
        net = cv2.dnn.readNetFromONNX(str(path))
    except cv2.error as exc:
        raise ModelError(
            f"OpenCV DNN cannot load {path.name}: {_first_line(exc)}",
            "The file is corrupt, truncated or uses operators OpenCV does not support: "
            "export it again, or load it with backend='onnx'.",
        ) from exc
    try:
        header = onnxinfo.read_header(path)
    except (OSError, onnxinfo.OnnxFormatError) as exc:
        raise ModelError(f"Cannot read the ONNX graph of {path.name}: {exc}", "Export it again.") from exc
    if len(header.inputs) != 1 or header.inputs[0].dtype != "float32":
        raise ModelError(
            f"{path.name} must have one float32 image input for OpenCV DNN, "
            f"found {[(i.name, i.dtype) for i in header.inputs]}",
            "Export the detector with a single float32 NCHW input.",
        )
    image_input = header.inputs[0]
    outputs = tuple(TensorSpec(o.name, o.shape, o.dtype) for o in header.outputs)
    return LoadedModel(
        session=DnnSession(net, image_input.name, [o.name for o in outputs]),
        input=TensorSpec(image_input.name, image_input.shape, image_input.dtype),
        outputs=outputs,
        metadata=header.metadata,
        layout="NCHW",  # OpenCV DNN only takes NCHW blobs
    )


@hookimpl
def edgecv_infer(
    spec: ModelSpec, session: Any, tensor: npt.NDArray[Any]
) -> list[npt.NDArray[np.float32]] | None:
    if spec.backend != BACKEND:
        return None  # another backend's model
    return session.run(tensor)  # type: ignore[no-any-return]


def _first_line(exc: Exception) -> str:
    """cv2.error texts span lines (source file, function); keep the first line of the message."""
    text = str(getattr(exc, "err", "") or exc)
    lines = [line.strip(" >") for line in text.splitlines() if line.strip(" >")]
    return lines[0][:200] if lines else type(exc).__name__

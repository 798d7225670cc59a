"""Everything that touches OpenCV: opening the net, describing its tensors, running it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edgecv.backend import (
    BackendError,
    ModelError,
    SessionSpec,
    TensorSpec,
    check_options,
    one_line,
    positive_int,
)
from edgecv_opencv_dnn import onnxinfo
from edgecv_opencv_dnn.plugin import INSTALL_HINT

KNOWN_OPTIONS = frozenset({"threads"})


class DnnSession:
    """A ``cv2.dnn.Net`` with its input and output names bound once."""

    def __init__(self, net: cv2.dnn.Net, spec: SessionSpec) -> None:
        self.net = net
        self._spec = spec
        self.input_name = spec.input.name
        self.output_names = [o.name for o in spec.outputs]
        # setInput + forward are two calls on the net's shared state: serialize callers.
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, options: Mapping[str, Any]) -> DnnSession:
        check_options(options, KNOWN_OPTIONS, "opencv-dnn")
        threads = positive_int(options, "threads", "opencv-dnn")
        if path.is_dir():
            raise ModelError(f"{path} is a folder, not an .onnx file", "Pass the .onnx file itself.")
        if not hasattr(cv2, "dnn"):
            raise BackendError(f"This OpenCV build ({cv2.__version__}) has no dnn module", INSTALL_HINT)
        if threads is not None:
            # OpenCV has one thread pool per process: this applies to every cv2 call, not just this model.
            cv2.setNumThreads(threads)
        try:
            # From memory: OpenCV crashes on a file name that is not UTF-8.
            net = cv2.dnn.readNetFromONNX(np.fromfile(path, dtype=np.uint8))
        except OSError as exc:
            raise ModelError(f"Cannot read {path}: {exc.strerror or exc}", "Check the file.") from exc
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
        spec = SessionSpec(
            input=TensorSpec(image_input.name, image_input.shape, image_input.dtype),
            outputs=tuple(TensorSpec(o.name, o.shape, o.dtype) for o in header.outputs),
            metadata=header.metadata,
            layout="NCHW",  # OpenCV DNN only takes NCHW blobs
        )
        return cls(net, spec)

    @property
    def spec(self) -> SessionSpec:
        return self._spec

    def run(self, tensor: npt.NDArray[Any]) -> list[npt.NDArray[np.float32]]:
        with self._lock:
            self.net.setInput(np.ascontiguousarray(tensor, dtype=np.float32), self.input_name)
            outputs = self.net.forward(self.output_names)
        return [np.asarray(output, dtype=np.float32) for output in outputs]

    @property
    def bare(self) -> Callable[[npt.NDArray[Any]], object]:
        net, feed, names = self.net, self.input_name, self.output_names

        def forward(tensor: npt.NDArray[Any]) -> object:
            # What a hand-written OpenCV script does: no lock, no copy, no dtype conversion.
            net.setInput(tensor, feed)
            return net.forward(names)

        return forward

    def close(self) -> None:
        """OpenCV frees the net with the object; there is nothing to release early."""


def _first_line(exc: cv2.error) -> str:
    """cv2.error texts span lines (source file, function); keep the first line of the message."""
    text = str(getattr(exc, "err", "") or exc)
    lines = [line.strip(" >") for line in text.splitlines() if line.strip(" >")]
    return one_line(lines[0]) if lines else type(exc).__name__

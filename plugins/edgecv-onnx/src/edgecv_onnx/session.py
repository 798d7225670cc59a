"""Everything that touches onnxruntime: session options, providers, tensor descriptions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edgecv.backend import (
    ConfigError,
    ModelError,
    SessionSpec,
    TensorSpec,
    check_options,
    one_line,
    positive_int,
    single_input,
)

# Tried in this order when the user does not choose: the fastest provider present wins.
PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)
KNOWN_OPTIONS = frozenset({"providers", "threads", "inter_threads", "spinning"})

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(double)": "float64",
}


def choose_providers(requested: Sequence[str] | str | None) -> list[str]:
    available = ort.get_available_providers()
    if requested is None:
        return [p for p in PREFERRED_PROVIDERS if p in available]
    if not isinstance(requested, (str, list, tuple)) or not all(isinstance(p, str) for p in requested):
        raise ConfigError(
            f"ONNX Runtime option providers must be a name or a list of names, got {requested!r}",
            'Pass e.g. providers=CPU (-o providers=CPU, or -o providers=\'["CUDA", "CPU"]\').',
        )
    wanted = [requested] if isinstance(requested, str) else list(requested)
    wanted = [p if p.endswith("ExecutionProvider") else f"{p}ExecutionProvider" for p in wanted]
    missing = [p for p in wanted if p not in available]
    if missing:
        raise ConfigError(
            f"ONNX Runtime provider(s) {', '.join(missing)} not available (have: {', '.join(available)})",
            "Install the onnxruntime build that has them (e.g. onnxruntime-gpu) or choose another.",
        )
    return wanted


def session_options(options: Mapping[str, Any]) -> ort.SessionOptions:
    """``threads`` / ``inter_threads`` (positive ints) and ``spinning`` (bool) as ONNX Runtime settings.

    ``spinning=False`` makes idle pool threads sleep instead of busy-waiting for the next call
    (both the intra-op and the inter-op pool); ONNX Runtime's default, kept when it is not given,
    spins, which is fastest on idle cores and can be much slower when other work shares them.
    """
    settings = ort.SessionOptions()
    settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    threads = positive_int(options, "threads", "ONNX Runtime")
    if threads is not None:
        settings.intra_op_num_threads = threads
    inter_threads = positive_int(options, "inter_threads", "ONNX Runtime")
    if inter_threads is not None:
        settings.inter_op_num_threads = inter_threads
    spinning = options.get("spinning")
    if spinning is not None:
        if not isinstance(spinning, bool):
            raise ConfigError(
                f"ONNX Runtime option spinning must be true or false, got {spinning!r}",
                "Pass spinning=false (-o spinning=false) to let idle threads sleep.",
            )
        for pool in ("intra_op", "inter_op"):
            settings.add_session_config_entry(f"session.{pool}.allow_spinning", "1" if spinning else "0")
    return settings


def _dims(shape: Sequence[Any]) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


def _tensor(arg: Any) -> TensorSpec:
    return TensorSpec(arg.name, _dims(arg.shape), _ORT_TYPES.get(arg.type, arg.type))


def _model_source(path: Path) -> str | bytes:
    """The file name, or the model's bytes when the name is not UTF-8.

    onnxruntime's bindings refuse a name with undecodable bytes (Python holds them as surrogates);
    from bytes, only weights kept in side files (ONNX external data) cannot be found.
    """
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ModelError(f"Cannot read {path}: {exc.strerror or exc}", "Check the file.") from exc
    return name


class OnnxSession:
    """An ``InferenceSession`` with its input and output names bound once."""

    def __init__(self, session: ort.InferenceSession, spec: SessionSpec) -> None:
        self.session = session
        self._spec = spec
        self.input_name = spec.input.name
        self.output_names = [o.name for o in spec.outputs]
        self.providers = session.get_providers()

    @classmethod
    def open(cls, path: Path, options: Mapping[str, Any]) -> OnnxSession:
        check_options(options, KNOWN_OPTIONS, "ONNX Runtime")
        if path.is_dir():
            raise ModelError(f"{path} is a folder, not an .onnx file", "Pass the .onnx file itself.")
        providers = choose_providers(options.get("providers"))
        settings = session_options(options)  # a bad value is its own error, not a bad model file
        model = _model_source(path)
        try:
            session = ort.InferenceSession(model, sess_options=settings, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"ONNX Runtime cannot load {path.name}: {one_line(first_line)}",
                "The file is corrupt, truncated or not an ONNX model: export or download it again.",
            ) from exc
        image_input = single_input(session.get_inputs(), path)
        spec = SessionSpec(
            input=_tensor(image_input),
            outputs=tuple(_tensor(o) for o in session.get_outputs()),
            metadata=dict(session.get_modelmeta().custom_metadata_map),
        )
        return cls(session, spec)

    @property
    def spec(self) -> SessionSpec:
        return self._spec

    def run(self, tensor: npt.NDArray[Any]) -> list[npt.NDArray[np.float32]]:
        outputs: list[npt.NDArray[np.float32]] = self.session.run(
            self.output_names, {self.input_name: tensor}
        )
        return outputs

    @property
    def bare(self) -> Callable[[npt.NDArray[Any]], object]:
        run, names, feed = self.session.run, self.output_names, self.input_name
        return lambda tensor: run(names, {feed: tensor})

    def close(self) -> None:
        """onnxruntime frees the session with the object; drop our reference."""

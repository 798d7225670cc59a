"""``TensorRTSession``: a TensorRT engine behind edgecv's ``Session`` protocol.

``.engine`` / ``.plan`` files load as they are, once their sidecar says they were built here
(``sidecar.check_engine``); an ``.onnx`` file is built into an engine on first use and taken from
the engine cache afterwards (``cache.engine_for``). Running goes through ``runtime.EngineRunner``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv.backend import (
    ConfigError,
    ModelError,
    Outputs,
    Progress,
    SessionSpec,
    check_options,
    terminal_progress,
)
from edgecv_tensorrt import runtime
from edgecv_tensorrt.plan import BUILD_OPTIONS
from edgecv_tensorrt.plugin import FORMATS
from edgecv_tensorrt.runtime import CudaApi, EngineRunner, MachineInfo, TensorRTModule
from edgecv_tensorrt.sidecar import Sidecar, check_engine

KNOWN_OPTIONS = BUILD_OPTIONS | {"progress"}
"""``BUILD_OPTIONS`` choose the engine built from an ``.onnx`` load (as ``edgecv export --to
tensorrt`` does); ``progress`` (an ``edgecv.backend.Progress``) reports that build."""


class TensorRTSession:
    """An engine's runner, its description, and where it came from (``engine_path``, ``sidecar``)."""

    def __init__(
        self,
        runner: EngineRunner,
        spec: SessionSpec,
        engine_path: Path,
        sidecar: Sidecar,
        machine: MachineInfo,
    ) -> None:
        self.runner = runner
        self._spec = spec
        self.engine_path = engine_path
        self.sidecar = sidecar
        self.machine = machine

    @classmethod
    def open(
        cls,
        path: Path,
        options: Mapping[str, Any],
        *,
        trt: TensorRTModule | None = None,
        cuda: CudaApi | None = None,
    ) -> TensorRTSession:
        """Open ``path`` (``.engine``, ``.plan`` or ``.onnx``) on ``trt`` and ``cuda``.

        ``None`` loads the real ones (``runtime.load_tensorrt``, ``runtime.load_cuda``), looked up
        on the module at call time so that tests can put fakes there. ``options``: see
        ``KNOWN_OPTIONS``.
        """
        check_options(options, KNOWN_OPTIONS, "TensorRT")
        if path.is_dir():
            raise ModelError(
                f"{path} is a folder, not a TensorRT engine or ONNX file",
                "Pass the .engine/.plan file or the .onnx file itself.",
            )
        if not path.name.lower().endswith(FORMATS):
            raise ModelError(
                f"{path.name} is not a TensorRT engine (.engine, .plan) or an .onnx file",
                "Pass an engine built by edgecv (edgecv export --to tensorrt) or the .onnx model.",
            )
        is_onnx = path.name.lower().endswith(".onnx")
        build = {k: v for k, v in options.items() if k in BUILD_OPTIONS}
        if build and not is_onnx:
            raise ConfigError(
                f"TensorRT option(s) {', '.join(sorted(build))} apply when building from an .onnx file, "
                f"not when loading the engine {path.name}",
                "Drop them, or rebuild the engine with edgecv export --to tensorrt --precision ...",
            )
        progress: Progress | None = options.get("progress")
        if progress is not None and not callable(progress):
            raise ConfigError(
                f"The TensorRT option progress is a {type(progress).__name__}, not an edgecv Progress",
                "Pass an edgecv.backend.Progress, or leave it out.",
            )
        trt = trt if trt is not None else runtime.load_tensorrt()
        cuda = cuda if cuda is not None else runtime.load_cuda()
        machine = runtime.machine_info(trt, cuda)
        if is_onnx:
            from edgecv_tensorrt import cache

            # A first build takes minutes: show it on a terminal unless the caller reports it itself.
            shown = progress if progress is not None else terminal_progress()
            engine_path = cache.engine_for(path, build, trt, machine, shown)
        else:
            engine_path = path
        sidecar = check_engine(engine_path, machine)
        try:
            data = engine_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"Cannot read {engine_path}: {exc.strerror or exc}", "Check the file.") from exc
        if hashlib.sha256(data).hexdigest() != sidecar.engine_sha256:  # replaced since the check
            raise ModelError(
                f"{engine_path.name} changed while it was being loaded", "Load it again when it is complete."
            )
        runner = EngineRunner(trt, cuda, data, name=engine_path.name)
        spec = SessionSpec(input=runner.input, outputs=runner.output_specs, metadata=dict(sidecar.metadata))
        return cls(runner, spec, engine_path, sidecar, machine)

    @property
    def spec(self) -> SessionSpec:
        return self._spec

    def run(self, tensor: npt.NDArray[Any]) -> Outputs:
        # Copies: the runner's outputs are its pinned buffers, which the next frame overwrites.
        return [np.array(output, dtype=np.float32) for output in self.runner.execute(tensor)]

    @property
    def bare(self) -> Callable[[npt.NDArray[Any]], object]:
        """What a hand-written TensorRT script does per frame: H2D, enqueue, D2H, sync; no copies."""
        return self.runner.execute

    def close(self) -> None:
        """Free the GPU buffers, the pinned host buffers, the stream and the engine (idempotent)."""
        self.runner.close()

"""``HailoSession``: a HEF on a Hailo device behind edgecv's ``AsyncSession`` protocol.

The device takes the letterboxed frame as uint8 NHWC, exactly what the core's preprocessing makes
for a uint8 input (no float tensor is ever built on the host). Outputs come back as HailoRT gives
them and are converted here into the float32 ``Outputs`` of the protocol:

- NMS-by-class outputs (HEFs compiled with on-chip NMS) become one dense ``[1, classes,
  max_boxes, 5]`` tensor that ``nms.HAILO_NMS`` decodes (boxes normalized to the input);
- raw outputs are dequantized (``(q - zero_point) * scale``) and presented with a batch axis, in
  HailoRT's (height, width, features) order; a one-row output ``(1, N, C)`` drops its row axis to
  become the ``[1, N, C]`` layout of the core's decoders. Any other layout reaches
  ``choose_decoder``, which names it in its error.

``submit`` keeps frames in flight on the device (``depth`` of them is what ``edgecv run`` and
``edgecv bench`` keep queued); ``run`` is one blocking frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv.backend import (
    ConfigError,
    ModelError,
    Outputs,
    SessionSpec,
    TensorSpec,
    check_options,
    positive_int,
)
from edgecv_hailo import runtime
from edgecv_hailo.nms import dense_nms
from edgecv_hailo.runtime import HailoModule, HailoRunner, RawOutput, StreamInfo
from edgecv_hailo.sidecar import read_sidecar

COUNT_OPTIONS = ("batch_size", "nms_max_proposals", "timeout_ms")
FRACTION_OPTIONS = ("nms_score_threshold", "nms_iou_threshold")
KNOWN_OPTIONS = frozenset(COUNT_OPTIONS + FRACTION_OPTIONS)
"""``batch_size``: frames the device runs at once (default: the HEF's own); ``nms_*``: override the
thresholds compiled into an NMS HEF (HailoRT 4.17+); ``timeout_ms``: how long a frame may take."""


def _checked_options(options: Mapping[str, Any]) -> dict[str, Any]:
    check_options(options, KNOWN_OPTIONS, "Hailo")
    checked: dict[str, Any] = {name: positive_int(options, name, "Hailo") for name in COUNT_OPTIONS}
    for name in FRACTION_OPTIONS:
        value = options.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1
        ):
            raise ConfigError(
                f"Hailo {name} must be a number from 0 to 1, got {value!r}", f"Pass e.g. {name}=0.5."
            )
        checked[name] = None if value is None else float(value)
    return {name: value for name, value in checked.items() if value is not None}


def presented_shape(info: StreamInfo) -> tuple[int, ...]:
    """The shape ``HailoSession`` gives an output (see the module docstring)."""
    if info.nms:
        return (1, *info.shape)
    if len(info.shape) == 3 and info.shape[0] == 1:
        return (1, *info.shape[1:])
    return (1, *info.shape)


class HailoSession:
    """A configured HEF (``runner``), its description, and where it came from (``hef_path``)."""

    def __init__(self, runner: HailoRunner, spec: SessionSpec, hef_path: Path) -> None:
        self.runner = runner
        self._spec = spec
        self.hef_path = hef_path
        self._shapes = [presented_shape(info) for info in runner.outputs]

    @classmethod
    def open(
        cls, path: Path, options: Mapping[str, Any], *, hailo: HailoModule | None = None
    ) -> HailoSession:
        """Open the HEF ``path`` on the first free Hailo device. ``hailo``: the HailoRT module
        (``None`` loads the real one, looked up at call time so that tests can put a fake there)."""
        settings = _checked_options(options)
        if path.is_dir():
            raise ModelError(f"{path} is a folder, not a HEF", "Pass the .hef file itself.")
        if not path.name.lower().endswith(".hef"):
            raise ModelError(
                f"{path.name} is not a HEF (.hef): the Hailo backend runs compiled HEF files",
                "Compile the model with edgecv export --to hailo (or Hailo's Dataflow Compiler).",
            )
        hailo = hailo if hailo is not None else runtime.load_hailo()
        runner = HailoRunner.open(hailo, path, **settings)
        try:
            metadata = read_sidecar(path)
            spec = session_spec(runner, metadata)
        except BaseException:
            runner.close()
            raise
        return cls(runner, spec, path)

    @property
    def spec(self) -> SessionSpec:
        return self._spec

    @property
    def depth(self) -> int:
        """Frames worth keeping in flight: the device's queue, and two batches when batching."""
        return max(2, self.runner.queue_size, 2 * self.runner.batch_size)

    def run(self, tensor: npt.NDArray[Any]) -> Outputs:
        return self.convert(self.runner.run(_frame(tensor)))

    def submit(self, tensor: npt.NDArray[Any]) -> Future[Outputs]:
        """Queue one frame on the device; the future resolves in HailoRT's completion thread."""
        result: Future[Outputs] = Future()
        result.set_running_or_notify_cancel()

        def done(outcome: list[RawOutput] | BaseException) -> None:
            if isinstance(outcome, BaseException):
                result.set_exception(outcome)
                return
            try:
                result.set_result(self.convert(outcome))
            except Exception as exc:  # a malformed output fails this frame, not HailoRT's thread
                result.set_exception(exc)

        self.runner.submit(_frame(tensor), done)
        return result

    def convert(self, raw: list[RawOutput]) -> Outputs:
        """HailoRT's outputs as the float32 tensors ``spec.outputs`` describes."""
        outputs: Outputs = []
        for info, shape, value in zip(self.runner.outputs, self._shapes, raw, strict=True):
            if info.nms:
                if not isinstance(value, list):
                    raise ModelError(
                        f"HailoRT returned a tensor for the NMS output {info.name}", "Report this."
                    )
                outputs.append(dense_nms(value, info.shape[1]))
                continue
            array = np.asarray(value)
            if info.scale is not None:
                zero_point = np.float32(info.zero_point or 0.0)
                array = (array.astype(np.float32) - zero_point) * np.float32(info.scale)
            outputs.append(array.astype(np.float32, copy=False).reshape(shape))
        return outputs

    @property
    def bare(self) -> Callable[[npt.NDArray[Any]], object]:
        """What a hand-written HailoRT script does per frame: one blocking run, no conversion."""
        runner = self.runner
        return lambda tensor: runner.run(tensor[0])

    def device(self) -> Mapping[str, Any]:
        return self.runner.device()

    def temperature(self) -> float | None:
        return self.runner.temperature()

    def close(self) -> None:
        """Wait for frames in flight, then release the device (idempotent)."""
        self.runner.close()


def _frame(tensor: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """The (H, W, C) frame of a batch-of-one uint8 NHWC tensor, C-contiguous as HailoRT needs."""
    if tensor.dtype != np.uint8 or tensor.ndim != 4 or tensor.shape[0] != 1:
        raise ConfigError(
            f"The Hailo backend takes one uint8 NHWC frame, got {tensor.dtype} {tuple(tensor.shape)}",
            "Prepare the frame with the model's own preprocessing (Model.preprocess).",
        )
    return np.ascontiguousarray(tensor[0])


def session_spec(runner: HailoRunner, metadata: Mapping[str, str]) -> SessionSpec:
    """What the HEF declares: a uint8 NHWC input, its outputs as presented, the sidecar's metadata."""
    height, width, channels = runner.input.shape
    outputs = tuple(TensorSpec(info.name, presented_shape(info), "float32") for info in runner.outputs)
    if not outputs or any(0 in spec.shape for spec in outputs):
        raise ModelError("The HEF declares no output, or an empty one", "Compile the model again.")
    return SessionSpec(
        input=TensorSpec(runner.input.name, (1, height, width, channels), "uint8"),
        outputs=outputs,
        metadata=dict(metadata),
        layout="NHWC",
        boxes_normalized=any(info.nms for info in runner.outputs),
    )

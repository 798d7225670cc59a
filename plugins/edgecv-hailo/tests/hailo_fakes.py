"""A fake ``hailo_platform`` (HailoRT's Python API) for tests without a Hailo device.

It follows HailoRT 4.21's InferModel API (hailo-ai/hailort ``pyhailort.py`` on the hailo8 branch,
commit 0df636dc; 4.18 at 01e4c7f for the older behaviour): the same names, argument names, return
types, shapes, dtypes, call order and exception classes, so ``edgecv_hailo.runtime.HailoRunner``
runs on it unchanged. Outputs are real: the fake HEF carries the ONNX model it was "compiled" from,
and every frame is computed with ONNX Runtime on it. Where a behaviour changed between 4.18 and
4.21 and the exact release is unknown, the fake switches at 4.19.

- ``write_fake_hef(path, onnx, ...)``: a fake ``.hef`` (``MAGIC`` + one JSON header line + the ONNX
  bytes) that only this fake reads. ``HEF(...)`` / ``create_infer_model(...)`` raise
  ``HailoRTInvalidHEFException`` for any other file and for a cut or altered one, and
  ``HailoRTHEFNotCompatibleWithDevice`` (4.19+; ``HailoRTInvalidHEFException`` before) for a HEF
  compiled for a bigger chip than the device (a Hailo-8 HEF on a Hailo-8L). As on a real device, a
  Hailo-8L HEF runs on a Hailo-8. What hailort.log would say is in ``fake.log``.
- Input: one ``uint8`` NHWC ``(H, W, 3)`` frame per bindings (the ONNX input's size, the channel
  order the ONNX model expects); the fake converts it to float / 255 NCHW for ONNX Runtime.
- NMS HEFs: ONNX Runtime (YOLOv8 layout ``[1, 4 + classes, N]``: cx, cy, w, h in input pixels, then
  class scores), then per-class NMS with OpenCV (``cv2.dnn.NMSBoxes``, independent of edgecv's own),
  at most ``max_boxes_per_class`` per class with ``score >= score_threshold``, normalized to the input
  size (not clipped) and written into the bound float32 buffer in HailoRT's NMS-by-class layout (per
  class: a count, then ``count`` rows ``[y_min, x_min, y_max, x_max, score]`` best first, classes
  back to back, tail zeroed). ``get_buffer()`` parses it as HailoRT does (4.19+: a list of one
  array per class; 4.16-4.18: that list wrapped in a one-frame list; an empty class is a float64
  ``(0, 5)`` array, as HailoRT makes it). ``set_nms_score_threshold`` / ``set_nms_iou_threshold`` /
  ``set_nms_max_proposals_per_class`` are honoured (the last also changes the stream's flat shape).
- Raw HEFs: each ONNX output quantized per tensor to ``uint8`` / ``uint16`` with a scale and zero
  point fixed at write time (from the output's range on a calibration frame), presented in HailoRT's
  3-D (height, width, features) shape (NCHW outputs transposed to NHWC; ``[1, A, B]`` becomes
  ``(1, A, B)``), with ``quant_infos``; ``FormatType.FLOAT32`` gives the dequantized float32 values.
- Async: ``run_async`` queues jobs; one worker thread per configured model completes them in
  order, writes the outputs into the bound buffers and then calls ``callback(completion_info=...)``.
  Inputs are read when the job runs, not when it is queued (the device DMAs them then). The queue
  is finite (``get_async_queue_size``, in frames): a ``run_async`` past it raises
  ``HAILO_QUEUE_IS_FULL``; ``wait_for_async_ready`` waits for room or raises ``HailoRTTimeout``.
  The device takes up to the batch size of frames per burst (``set_batch_size``, else the HEF's
  ``batch_size``). Without the scheduler (pyhailort's default ``HailoSchedulingAlgorithm.NONE``) a
  configured model must be ``activate()``d before it runs.
- Devices: ``VDevice.get_physical_devices()`` -> ``Device`` objects whose ``control.identify()``
  and ``control.get_chip_temperature()`` answer like a Raspberry Pi AI Kit (settable on ``fake``).
  A device is held by one live ``VDevice`` at a time: a second ``VDevice`` fails with
  ``HAILO_OUT_OF_PHYSICAL_DEVICES`` unless both set the same ``group_id`` other than pyhailort's
  default ``"UNIQUE"`` (Hailo's apps use ``"SHARED"``); ``fake.busy`` plays another process.

The fake is strict where real HailoRT fails or silently corrupts data: wrong buffer size ->
``HailoRTInvalidOperationException``; a buffer not C-contiguous -> ``HailoRTException``; running
before every stream has a buffer, after ``shutdown()`` or after ``VDevice.release()`` raises; an
output buffer still bound to a frame in flight, or a buffer of the right size but another dtype, is
an ``AssertionError`` (real HailoRT would overwrite or reinterpret it). Input format ``FLOAT32`` and
NMS formats other than ``FLOAT32`` are not emulated (``AssertionError`` naming them).

``fake_hailo(version, arch, ...)`` builds the module; ``module.fake`` (a ``FakeHailoState``; not
part of the real API) holds the test hooks (``gate``, ``stall``, ``fail_next``, ``temperature``,
``busy``, ...) and records (``calls``, ``max_in_flight``, ``bursts``, ``closed``, ``log``).
Versions before 4.16 have no ``VDevice.create_infer_model`` / ``InferModel`` (only the
InferVStreams-era names, which raise if used). ``install_fake(monkeypatch, ...)`` puts a fake
behind ``edgecv_hailo.runtime.load_hailo`` and ``availability``. ``write_tiny_onnx`` makes a
YOLOv8-layout model small enough for tests that run many frames.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, cast

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest

from edgecv.testing import fake_files

MAGIC = b"EDGECV-FAKE-HEF\n"
DEFAULT_VERSION = "4.20.0"
DEFAULT_ARCH = "HAILO8L"
DEFAULT_QUEUE_SIZE = 4
BBOX_PARAMS = 5
PI5_DEVICE_ID = "0001:01:00.0"  # the Pi 5's PCIe domain is 1
HEF_ARCHS = {"hailo8": "HAILO8", "hailo8l": "HAILO8L"}
# Which HEF architectures each device runs: a Hailo-8L HEF runs (slower) on a Hailo-8, not the reverse.
RUNS_ON = {"HAILO8": {"hailo8", "hailo8l"}, "HAILO8L": {"hailo8l"}}

# --- HailoRT status codes and the exceptions pyhailort builds from them ---------------------------

STATUS = {
    "HAILO_INVALID_ARGUMENT": 2,
    "HAILO_TIMEOUT": 4,
    "HAILO_INVALID_OPERATION": 6,
    "HAILO_INTERNAL_FAILURE": 8,
    "HAILO_OPEN_FILE_FAILURE": 13,
    "HAILO_INVALID_HEF": 26,
    "HAILO_DRIVER_OPERATION_FAILED": 36,
    "HAILO_NOT_FOUND": 61,
    "HAILO_STREAM_ABORT": 63,
    "HAILO_DRIVER_NOT_INSTALLED": 64,
    "HAILO_NETWORK_GROUP_NOT_ACTIVATED": 69,
    "HAILO_DEVICE_IN_USE": 73,
    "HAILO_OUT_OF_PHYSICAL_DEVICES": 74,
    "HAILO_INVALID_DRIVER_VERSION": 76,
    "HAILO_QUEUE_IS_FULL": 82,
    "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE": 93,
}


class HailoRTException(Exception):
    pass


class HailoRTTimeout(HailoRTException):
    pass


class HailoRTStreamAborted(HailoRTException):
    pass


class HailoRTStreamAbortedByUser(HailoRTException):
    pass


class HailoRTInvalidOperationException(HailoRTException):
    pass


class HailoRTInvalidArgumentException(HailoRTException):
    pass


class HailoRTNotFoundException(HailoRTException):
    pass


class HailoRTInvalidHEFException(HailoRTException):
    pass


class HailoRTHEFNotCompatibleWithDevice(HailoRTException):
    pass


class HailoRTDriverOperationFailedException(HailoRTException):
    pass


class HailoRTPCIeDriverException(HailoRTException):  # 4.18's name (4.19+: alias of the one above)
    pass


class HailoRTNetworkGroupNotActivatedException(HailoRTException):
    pass


class HailoCommunicationClosedException(HailoRTException):
    pass


# (status, class, message) as pyhailort's ExceptionWrapper.create_exception_from_status has them.
_STATUS_EXCEPTIONS: dict[str, tuple[type[HailoRTException], str]] = {
    "HAILO_TIMEOUT": (
        HailoRTTimeout,
        "Received a timeout - hailort has failed because a timeout had occurred",
    ),
    "HAILO_STREAM_ABORT": (HailoRTStreamAborted, "Stream was aborted"),
    "HAILO_INVALID_OPERATION": (
        HailoRTInvalidOperationException,
        "Invalid operation. See hailort.log for more information",
    ),
    "HAILO_INVALID_ARGUMENT": (
        HailoRTInvalidArgumentException,
        "Invalid argument. See hailort.log for more information",
    ),
    "HAILO_NOT_FOUND": (HailoRTNotFoundException, "Item not found. See hailort.log for more information"),
    "HAILO_INVALID_HEF": (HailoRTInvalidHEFException, "Invalid HEF. See hailort.log for more information"),
    "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE": (
        HailoRTHEFNotCompatibleWithDevice,
        "HEF file is not compatible with device. See hailort.log for more information",
    ),
    "HAILO_DRIVER_OPERATION_FAILED": (
        HailoRTDriverOperationFailedException,
        "Failure in hailort driver ioctl. run 'dmesg | grep hailo' for more information",
    ),
    "HAILO_NETWORK_GROUP_NOT_ACTIVATED": (
        HailoRTNetworkGroupNotActivatedException,
        "Network group is not activated",
    ),
}


def parse_version(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _status_exception(version: tuple[int, int], status: str, log: str = "") -> HailoRTException:
    """The exception pyhailort ``version`` raises for ``status``; ``log`` (what hailort.log would
    say) is attached as a note, as the real message only points at hailort.log."""
    known = dict(_STATUS_EXCEPTIONS)
    if version < (4, 19):  # 4.18: no HEF-compatibility class, the driver class has its old name
        del known["HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE"]
        known["HAILO_DRIVER_OPERATION_FAILED"] = (
            HailoRTPCIeDriverException,
            "PCIe driver failure. run 'dmesg | grep hailo' for more information",
        )
    kind, message = known.get(
        status, (HailoRTException, f"libhailort failed with error: {STATUS[status]} ({status})")
    )
    error = kind(message)
    if log and hasattr(error, "add_note"):  # Python 3.11+
        error.add_note(f"hailort.log: {log}")
    return error


# --- enums and small records ------------------------------------------------------------------------


class FormatType(enum.Enum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


_FORMAT_DTYPES: dict[FormatType, np.dtype[Any]] = {
    FormatType.UINT8: np.dtype(np.uint8),
    FormatType.UINT16: np.dtype(np.uint16),
    FormatType.FLOAT32: np.dtype(np.float32),
}


def _format_order(version: tuple[int, int]) -> type[enum.Enum]:
    nms = "HAILO_NMS" if version < (4, 19) else "HAILO_NMS_BY_CLASS"
    names = ["AUTO", "NHWC", "NHCW", "FCR", "F8CR", "NHW", "NC", nms, "HAILO_NMS_WITH_BYTE_MASK"]
    if version >= (4, 19):
        names.append("HAILO_NMS_BY_SCORE")
    return cast(type[enum.Enum], enum.Enum("FormatOrder", {name: index for index, name in enumerate(names)}))


class FormatFlags(enum.Enum):
    NONE = 0
    QUANTIZED = 1
    TRANSPOSED = 2


class HailoSchedulingAlgorithm(enum.Enum):
    NONE = 0
    ROUND_ROBIN = 1


class DeviceArchitectureTypes(enum.IntEnum):
    HAILO8_A0 = 0
    HAILO8 = 1
    HAILO8L = 2
    HAILO15H = 3
    PLUTO = 4
    HAILO15M = 5
    HAILO10H = 6

    def __str__(self) -> str:
        return self.name


@dataclass
class HailoFormat:
    type: FormatType
    order: Any
    flags: FormatFlags = FormatFlags.NONE


@dataclass
class QuantInfo:
    qp_zp: float
    qp_scale: float
    limvals_min: float
    limvals_max: float


@dataclass
class NmsShape:
    number_of_classes: int
    max_bboxes_per_class: int
    max_mask_size: int = 0


@dataclass
class TemperatureInfo:
    ts0_temperature: float
    ts1_temperature: float
    sample_count: int


class HailoFirmwareVersion:
    def __init__(self, major: int, minor: int, revision: int, is_release: bool = True) -> None:
        self.major, self.minor, self.revision = major, minor, revision
        self.is_release = is_release

    def __str__(self) -> str:
        return (
            f"{self.major}.{self.minor}.{self.revision} ({'release' if self.is_release else 'develop'},app)"
        )


@dataclass
class BoardInformation:
    protocol_version: int
    firmware_version: HailoFirmwareVersion
    logger_version: int
    board_name: str
    is_release: bool
    device_architecture: DeviceArchitectureTypes
    serial_number: str
    part_number: str
    product_name: str


class VDeviceParams:
    """``VDevice.create_params()``: pyhailort's default sets ``scheduling_algorithm = NONE``."""

    def __init__(self) -> None:
        self.device_count = 1
        self.group_id = "UNIQUE"
        self.scheduling_algorithm = HailoSchedulingAlgorithm.NONE
        self._multi_process_service = False

    @property
    def multi_process_service(self) -> bool:
        return self._multi_process_service


class AsyncInferCompletionInfo:
    def __init__(self, exception: BaseException | None) -> None:
        self._exception = exception

    @property
    def exception(self) -> BaseException | None:
        return self._exception


# --- the fake HEF on disk ---------------------------------------------------------------------------


def fake_hef_bytes(header: Mapping[str, Any], model: bytes) -> bytes:
    return fake_files.pack(MAGIC, header, model)


def parse_fake_hef(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(header, ONNX bytes) of a fake HEF; ``None`` for anything else."""
    return fake_files.unpack(MAGIC, data)


_SESSIONS: dict[str, ort.InferenceSession] = {}
_SESSIONS_LOCK = threading.Lock()


def onnx_session(model: bytes) -> ort.InferenceSession:
    """One ONNX Runtime session per model (shared: ``run`` is thread-safe, creating one is slow)."""
    digest = hashlib.sha256(model).hexdigest()
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(digest)
        if session is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 2
            session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
            _SESSIONS[digest] = session
        return session


def onnx_input_size(session: ort.InferenceSession) -> tuple[int, int]:
    shape = session.get_inputs()[0].shape
    if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]) or shape[1] != 3:
        raise ValueError(f"fake HEF: the ONNX input must be a static [1, 3, H, W] tensor, got {shape}")
    return int(shape[2]), int(shape[3])


def run_onnx(session: ort.InferenceSession, frame: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
    """ONNX Runtime on one uint8 (H, W, 3) frame, converted as the HEF's input layer does (/255, NCHW)."""
    tensor = (frame.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)[None]
    name = session.get_inputs()[0].name
    return [
        np.asarray(out, dtype=np.float32) for out in session.run(None, {name: np.ascontiguousarray(tensor)})
    ]


def hailo_shape(onnx_shape: Sequence[int]) -> tuple[int, int, int]:
    """HailoRT's (height, width, features) for an ONNX output (batch axis dropped)."""
    dims = tuple(int(d) for d in onnx_shape[1:])
    if len(dims) == 3:  # NCHW -> NHWC
        return dims[1], dims[2], dims[0]
    if len(dims) == 2:
        return 1, dims[0], dims[1]
    if len(dims) == 1:
        return 1, 1, dims[0]
    raise ValueError(f"fake HEF: no HailoRT layout for an output of shape {list(onnx_shape)}")


def to_hailo_layout(output: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """One frame of an ONNX output in HailoRT's (height, width, features) order."""
    frame = output[0]
    if frame.ndim == 3:
        frame = frame.transpose(1, 2, 0)
    return np.ascontiguousarray(frame.reshape(hailo_shape(output.shape)))


def quantization(low: float, high: float, dtype: str) -> tuple[float, float]:
    """(scale, zero_point) mapping [low, high] (widened to hold 0) onto the whole unsigned range."""
    top = float(np.iinfo(np.dtype(dtype)).max)
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if high - low <= 0.0:
        high = low + 1.0
    scale = (high - low) / top
    return scale, float(np.clip(np.rint(-low / scale), 0, top)) + 0.0  # never -0.0


def quantize(
    values: npt.NDArray[np.float32], scale: float, zero_point: float, dtype: str
) -> npt.NDArray[Any]:
    top = np.iinfo(np.dtype(dtype)).max
    quantized: npt.NDArray[Any] = np.clip(np.rint(values / scale + zero_point), 0, top).astype(dtype)
    return quantized


def dequantize(values: npt.NDArray[Any], scale: float, zero_point: float) -> npt.NDArray[np.float32]:
    """What HailoRT does for a FLOAT32 output: ``(q - qp_zp) * qp_scale``."""
    real: npt.NDArray[np.float32] = (values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    return real.astype(np.float32)


def nms_by_class(
    prediction: npt.NDArray[np.float32],
    input_size: tuple[int, int],
    *,
    score_threshold: float,
    iou_threshold: float,
    max_boxes_per_class: int,
) -> list[npt.NDArray[np.float32]]:
    """A YOLOv8 head ``[1, 4 + classes, N]`` through per-class OpenCV NMS: one float32 ``(n, 5)``
    array per class, rows ``[y_min, x_min, y_max, x_max, score]`` normalized to ``input_size``
    (height, width), best score first, ``score >= score_threshold``, at most ``max_boxes_per_class``."""
    rows = prediction.reshape(prediction.shape[-2], prediction.shape[-1]).astype(np.float32)
    height, width = input_size
    cx, cy, w, h = rows[0], rows[1], rows[2], rows[3]
    x1, y1 = cx - w / 2, cy - h / 2
    result: list[npt.NDArray[np.float32]] = []
    for scores in rows[4:]:
        candidates = np.flatnonzero(scores >= score_threshold)
        if candidates.size == 0 or max_boxes_per_class == 0:
            result.append(np.zeros((0, BBOX_PARAMS), np.float32))
            continue
        rects = np.stack([x1[candidates], y1[candidates], w[candidates], h[candidates]], axis=1).astype(
            np.float64
        )
        # The candidates already pass HailoRT's >=; OpenCV's own threshold (> 0, it refuses < 0)
        # only drops exact zeros, which HailoRT keeps for a threshold of 0.
        kept = np.asarray(
            cv2.dnn.NMSBoxes(rects.tolist(), scores[candidates].tolist(), 0.0, float(iou_threshold)),
            dtype=np.int64,
        ).reshape(-1)[:max_boxes_per_class]
        chosen = candidates[kept]
        result.append(
            np.stack(
                [
                    y1[chosen] / height,
                    x1[chosen] / width,
                    (y1[chosen] + h[chosen]) / height,
                    (x1[chosen] + w[chosen]) / width,
                    scores[chosen],
                ],
                axis=1,
            ).astype(np.float32)
        )
    return result


def nms_frame_size(classes: int, max_boxes: int) -> int:
    """Elements of one NMS-by-class host frame: per class a counter + ``max_boxes`` rows."""
    return classes * (1 + BBOX_PARAMS * max_boxes)


def pack_nms(per_class: Sequence[npt.NDArray[np.float32]], max_boxes: int) -> npt.NDArray[np.float32]:
    """HailoRT's NMS-by-class buffer: classes back to back (count, then rows), tail zeroed."""
    flat = np.zeros(nms_frame_size(len(per_class), max_boxes), np.float32)
    offset = 0
    for rows in per_class:
        count = min(len(rows), max_boxes)
        flat[offset] = count
        flat[offset + 1 : offset + 1 + BBOX_PARAMS * count] = np.asarray(rows[:count], np.float32).reshape(-1)
        offset += 1 + BBOX_PARAMS * count
    return flat


def unpack_nms(flat: npt.NDArray[np.float32], classes: int) -> list[npt.NDArray[Any]]:
    """pyhailort's ``output_raw_buffer_to_nms_format_single_frame``: views into ``flat``; an empty
    class is ``numpy.empty([0, 5])`` (float64, as HailoRT makes it)."""
    frame: list[npt.NDArray[Any]] = []
    offset = 0
    for _ in range(classes):
        count = int(flat[offset])
        offset += 1
        if count == 0:
            frame.append(np.empty([0, BBOX_PARAMS]))
        else:
            frame.append(flat[offset : offset + BBOX_PARAMS * count].reshape(count, BBOX_PARAMS))
            offset += BBOX_PARAMS * count
    return frame


def synthetic_frame(size: tuple[int, int], seed: int = 0) -> npt.NDArray[np.uint8]:
    """A deterministic uint8 (H, W, 3) frame: a gradient with a few solid blocks."""
    height, width = size
    rng = np.random.default_rng(seed)
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    frame[..., 1] = np.linspace(255, 0, height, dtype=np.uint8)[:, None]
    frame[..., 2] = 114
    for _ in range(6):
        y, x = int(rng.integers(0, height * 3 // 4)), int(rng.integers(0, width * 3 // 4))
        frame[y : y + height // 5, x : x + width // 5] = rng.integers(0, 256, 3, dtype=np.uint8)
    return frame


def write_tiny_onnx(path: Path | str, size: int = 32, classes: int = 2, *, feature_map: bool = False) -> Path:
    """A tiny YOLOv8-layout detector (microseconds per frame) for tests that need many frames.

    Input ``images`` [1, 3, size, size] (0..1); output ``output0`` [1, 4 + classes, size * size]: at
    every pixel a 6 x 6 box centred on it (input pixels) and class scores equal to channel ``c % 3``
    of that pixel, so each frame's content decides its detections. ``feature_map``: a second output
    ``features`` [1, 4 + classes, size, size] (NCHW), the same values before the reshape.
    """
    from onnx import TensorProto, helper, save_model

    rows = 4 + classes
    weight = np.zeros((rows, 3, 1, 1), np.float32)
    for index in range(classes):
        weight[4 + index, index % 3] = 1.0
    grid = np.zeros((1, rows, size, size), np.float32)
    grid[0, 0] = np.arange(size, dtype=np.float32)[None, :] + 0.5
    grid[0, 1] = np.arange(size, dtype=np.float32)[:, None] + 0.5
    grid[0, 2:4] = 6.0
    nodes = [
        helper.make_node("Conv", ["images", "weight"], ["scores"]),
        helper.make_node("Add", ["scores", "grid"], ["features"]),
        helper.make_node("Reshape", ["features", "flat"], ["output0"]),
    ]
    outputs = [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, rows, size * size])]
    if feature_map:
        outputs.append(helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, rows, size, size]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        outputs,
        initializer=[
            helper.make_tensor("weight", TensorProto.FLOAT, weight.shape, weight.reshape(-1)),
            helper.make_tensor("grid", TensorProto.FLOAT, grid.shape, grid.reshape(-1)),
            helper.make_tensor("flat", TensorProto.INT64, [3], [1, rows, size * size]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    save_model(model, str(path))
    return Path(path)


def write_fake_hef(
    path: Path | str,
    onnx: Path | str,
    *,
    nms: bool = True,
    classes: int | None = None,
    max_boxes_per_class: int = 100,
    score_threshold: float = 0.2,
    iou_threshold: float = 0.7,
    output_dtype: str = "uint8",
    batch_size: int = 1,
    hw_arch: str = "hailo8l",
    calibration: npt.NDArray[np.uint8] | None = None,
    network: str | None = None,
) -> Path:
    """Write a fake HEF of ``onnx`` to ``path``, as the Dataflow Compiler would for ``hw_arch``.

    ``nms``: with HailoRT's YOLOv8 NMS post-process (the ONNX output must be ``[1, 4 + classes, N]``;
    ``classes`` defaults to that count and must match it). Else raw outputs quantized to
    ``output_dtype`` ("uint8" or "uint16") with a per-tensor scale / zero point from their range on
    ``calibration`` (a uint8 (H, W, 3) frame of the input size; default ``synthetic_frame``).
    ``batch_size``: the batch the device runs when the application sets none. ``network``: the
    network group name prefixing the stream names (default: the ONNX file's stem).
    """
    path, onnx = Path(path), Path(onnx)
    if hw_arch not in HEF_ARCHS:
        raise ValueError(f"hw_arch must be one of {sorted(HEF_ARCHS)}, got {hw_arch!r}")
    if output_dtype not in ("uint8", "uint16"):
        raise ValueError(f"output_dtype must be 'uint8' or 'uint16', got {output_dtype!r}")
    if batch_size < 1 or max_boxes_per_class < 1:
        raise ValueError("batch_size and max_boxes_per_class must be at least 1")
    model = onnx.read_bytes()
    session = onnx_session(model)
    size = onnx_input_size(session)
    net = network or onnx.stem
    header: dict[str, Any] = {
        "hw_arch": hw_arch,
        "network": net,
        "batch_size": batch_size,
        # A real HEF carries its length and a checksum of its content: HailoRT refuses a cut or
        # altered file as HAILO_INVALID_HEF before using any of it.
        "model_bytes": len(model),
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "input": {"name": f"{net}/input_layer1", "shape": [size[0], size[1], 3]},
        "nms": None,
        "outputs": [],
    }
    frame = synthetic_frame(size) if calibration is None else calibration
    if frame.shape != (size[0], size[1], 3) or frame.dtype != np.uint8:
        raise ValueError(
            f"calibration must be a uint8 {(size[0], size[1], 3)} frame, got {frame.dtype} {frame.shape}"
        )
    outputs = run_onnx(session, frame)
    names = [o.name for o in session.get_outputs()]
    if nms:
        if len(outputs) != 1 or outputs[0].ndim != 3 or outputs[0].shape[1] <= 4:
            raise ValueError(
                f"fake NMS HEF: needs one YOLOv8 output [1, 4 + classes, N], got {[o.shape for o in outputs]}"
            )
        found = outputs[0].shape[1] - 4
        if classes is not None and classes != found:
            raise ValueError(f"classes={classes} but the ONNX output has {found} class scores")
        header["nms"] = {
            "name": f"{net}/yolov8_nms_postprocess",
            "onnx_name": names[0],
            "classes": found,
            "max_boxes_per_class": max_boxes_per_class,
            "score_threshold": score_threshold,
            "iou_threshold": iou_threshold,
        }
    else:
        for name, output in zip(names, outputs, strict=True):
            scale, zero_point = quantization(float(output.min()), float(output.max()), output_dtype)
            header["outputs"].append(
                {
                    "name": f"{net}/{name}",
                    "onnx_name": name,
                    "shape": list(hailo_shape(output.shape)),
                    "dtype": output_dtype,
                    "scale": scale,
                    "zero_point": zero_point,
                }
            )
    path.write_bytes(fake_hef_bytes(header, model))
    return path


# --- the parsed HEF ---------------------------------------------------------------------------------


@dataclass
class _StreamDef:
    """One stream of a fake HEF, as compiled."""

    name: str
    direction: str  # "input" / "output"
    shape: tuple[int, ...]  # (h, w, c) for tensors
    dtype: str  # the device's type: uint8 / uint16 (float32 for NMS)
    scale: float = 1.0
    zero_point: float = 0.0
    onnx_name: str = ""
    nms: dict[str, Any] | None = None


class _Network:
    """A fake HEF's streams and the ONNX Runtime session that computes them."""

    def __init__(self, header: Mapping[str, Any], model: bytes) -> None:
        self.header = dict(header)
        self.hw_arch = str(header["hw_arch"])
        self.name = str(header["network"])
        self.batch_size = int(header["batch_size"])
        self.session = onnx_session(model)
        spec = header["input"]
        self.input = _StreamDef(spec["name"], "input", tuple(spec["shape"]), "uint8")
        self.outputs: list[_StreamDef] = []
        nms = header.get("nms")
        if nms:
            self.outputs.append(
                _StreamDef(nms["name"], "output", (), "float32", onnx_name=nms["onnx_name"], nms=dict(nms))
            )
        for out in header["outputs"]:
            self.outputs.append(
                _StreamDef(
                    out["name"],
                    "output",
                    tuple(out["shape"]),
                    out["dtype"],
                    out["scale"],
                    out["zero_point"],
                    out["onnx_name"],
                )
            )

    def stream(self, name: str) -> _StreamDef:
        for stream in [self.input, *self.outputs]:
            if stream.name == name:
                return stream
        raise KeyError(name)

    def infer(self, frame: npt.NDArray[np.uint8]) -> dict[str, npt.NDArray[np.float32]]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, run_onnx(self.session, frame), strict=True))


def _read_hef(source: str | bytes, version: tuple[int, int], log: list[str]) -> _Network:
    if isinstance(source, str):
        try:
            source.encode("utf-8")
        except UnicodeEncodeError:  # pybind11 converts str to std::string as UTF-8, and refuses
            raise TypeError("incompatible function arguments: a str that is not valid UTF-8") from None
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            log.append(f"Failed to open HEF file {source}: {exc.strerror}")
            raise _status_exception(version, "HAILO_OPEN_FILE_FAILURE", log[-1]) from None
    elif isinstance(source, bytes):
        data = source
    else:
        raise ValueError("HEF can only be created from a file path (str) or a buffer (bytes)")
    parsed = parse_fake_hef(data)
    if parsed is None:
        log.append("HEF file is invalid: magic of HEF header does not match (not a HEF)")
        raise _status_exception(version, "HAILO_INVALID_HEF", log[-1])
    header, model = parsed
    if len(model) != header.get("model_bytes", len(model)):
        log.append("HEF file length does not match")
    elif hashlib.sha256(model).hexdigest() != header.get("model_sha256", hashlib.sha256(model).hexdigest()):
        log.append("HEF checksum does not match (corrupted HEF)")
    else:
        try:
            return _Network(header, model)
        except Exception as exc:  # a header this fake cannot use: as corrupt as a bad checksum
            log.append(f"HEF could not be parsed: {exc}")
    raise _status_exception(version, "HAILO_INVALID_HEF", log[-1])


class VStreamInfo:
    def __init__(
        self, stream: _StreamDef, network: str, fmt: HailoFormat, quant: QuantInfo, nms: NmsShape | None
    ) -> None:
        self.name = stream.name
        self.network_name = network
        self.format = fmt
        self.quant_info = quant
        self.direction = stream.direction
        self._nms = nms
        self.shape = (
            (nms.number_of_classes, BBOX_PARAMS, nms.max_bboxes_per_class) if nms else tuple(stream.shape)
        )

    @property
    def nms_shape(self) -> NmsShape:
        if self._nms is None:
            raise HailoRTInvalidOperationException(f"{self.name} is not an NMS stream: it has no nms_shape")
        return self._nms


# --- the fake's state: hooks and records ------------------------------------------------------------


@dataclass
class FakeHailoState:
    """Test hooks and records of one fake ``hailo_platform`` module (``module.fake``)."""

    version: tuple[int, int]
    arch: str
    devices: int = 1
    queue_size: int = DEFAULT_QUEUE_SIZE
    firmware: tuple[int, int, int] = (4, 20, 0)
    board_name: str = "Hailo-8"
    serial_number: str = ""
    part_number: str = ""
    product_name: str = ""
    temperature: tuple[float, float] | BaseException = (51.0, 52.5)
    """(ts0, ts1) in °C, or an exception ``get_chip_temperature`` raises."""
    identify_error: BaseException | None = None
    busy: bool = False
    """Another process holds the device: ``VDevice()`` fails as HailoRT does."""
    vdevice_status: str | None = None
    """A status ``VDevice()`` fails with, e.g. "HAILO_INVALID_DRIVER_VERSION"."""
    gate: threading.Event = field(default_factory=threading.Event)
    """Cleared: the device holds every queued job until it is set again."""
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    """What hailort.log would say (the exceptions only point there)."""
    bursts: list[int] = field(default_factory=list)
    """Frames per device burst, in order."""
    max_in_flight: int = 0
    callback_errors: list[BaseException] = field(default_factory=list)
    vdevice_params: list[VDeviceParams] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _stall: int = 0
    _failures: deque[tuple[str, bool]] = field(default_factory=deque)
    live_vdevices: list[Any] = field(default_factory=list)
    live_models: list[Any] = field(default_factory=list)
    live_devices: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate.set()

    def record(self, *call: Any) -> None:
        with self.lock:
            self.calls.append(call)

    def names(self) -> list[str]:
        """The recorded calls by name, in order."""
        return [str(call[0]) for call in self.calls]

    def stall(self, count: int = 1) -> None:
        """The next ``count`` jobs the device takes never complete (until ``shutdown`` aborts them)."""
        with self.lock:
            self._stall += count

    def fail_next(
        self, count: int = 1, status: str = "HAILO_INTERNAL_FAILURE", *, pipeline_down: bool = False
    ) -> None:
        """The next ``count`` jobs complete with ``status`` (``completion_info.exception``; ``job.wait``
        raises it). ``pipeline_down``: as HailoRT documents for errors, the pipeline then shuts down:
        queued jobs are aborted and later calls raise ``HailoRTStreamAborted``."""
        with self.lock:
            self._failures.extend([(status, pipeline_down)] * count)

    def exception(self, status: str, log: str = "") -> HailoRTException:
        if log:
            self.log.append(log)
        return _status_exception(self.version, status, log)

    @property
    def in_flight(self) -> int:
        return sum(model.outstanding for model in self.live_models)

    @property
    def closed(self) -> bool:
        """Every configured model shut down (or exited), every VDevice and Device released."""
        return not (self.live_models or self.live_vdevices or self.live_devices)

    def check_callbacks(self) -> None:
        """Fail loudly for a callback that raised (real HailoRT would terminate the process)."""
        if self.callback_errors:
            raise AssertionError(
                f"fake HailoRT: a run_async callback raised {self.callback_errors[0]!r}; "
                "real HailoRT cannot carry that error back"
            ) from self.callback_errors[0]


# --- devices ----------------------------------------------------------------------------------------


class Control:
    def __init__(self, device: Device) -> None:
        self._owner = device

    def _state(self) -> FakeHailoState:
        if self._owner._released:
            raise HailoRTInvalidOperationException(
                "The device in use has been released. This can happen if 'device.release()' has been called, "
                "or one-liner usage of control 'Device().control.XX()'"
            )
        return self._owner._fake

    def identify(self) -> BoardInformation:
        state = self._state()
        state.record("identify")
        if state.identify_error is not None:
            raise state.identify_error
        major, minor, revision = state.firmware
        return BoardInformation(
            protocol_version=2,
            firmware_version=HailoFirmwareVersion(major, minor, revision),
            logger_version=0,
            board_name=state.board_name.ljust(32, "\x00"),
            is_release=True,
            device_architecture=DeviceArchitectureTypes[state.arch],
            serial_number=state.serial_number.ljust(16, "\x00"),
            part_number=state.part_number.ljust(16, "\x00"),
            product_name=state.product_name.ljust(42, "\x00"),
        )

    def get_chip_temperature(self) -> TemperatureInfo:
        state = self._state()
        state.record("get_chip_temperature")
        reading = state.temperature
        if isinstance(reading, BaseException):
            raise reading
        return TemperatureInfo(float(reading[0]), float(reading[1]), len(state.calls) & 0xFFFF)


class Device:
    """A physical device (``Device(id)``); ``release()`` it when done."""

    _fake: FakeHailoState

    @classmethod
    def scan(cls) -> list[str]:
        return [PI5_DEVICE_ID] if cls._fake.devices else []

    def __init__(self, device_id: str | None = None) -> None:
        self._released = True
        if device_id is None:
            found = self.scan()
            if not found:
                raise HailoRTException("HailoRT device not found in the system")
            device_id = found[0]
        if device_id not in self.scan():
            raise self._fake.exception("HAILO_NOT_FOUND", f"Device {device_id} not found")
        self._device_id = device_id
        self._fake.record("Device", device_id)
        self._released = False
        self._control = Control(self)
        try:
            self._control.identify()  # as pyhailort's Control() does: a failing identify fails Device()
        except BaseException:
            self._released = True
            raise
        with self._fake.lock:
            self._fake.live_devices.append(self)

    @property
    def device_id(self) -> str:
        return self._device_id

    @property
    def control(self) -> Control:
        return self._control

    def release(self) -> None:
        if not self._released:
            self._released = True
            with self._fake.lock:
                if self in self._fake.live_devices:
                    self._fake.live_devices.remove(self)
            self._fake.record("Device.release", self._device_id)

    def __del__(self) -> None:
        if not getattr(self, "_released", True):
            self.release()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *args: object) -> Literal[False]:
        self.release()
        return False


# --- InferModel -------------------------------------------------------------------------------------


@dataclass
class _StreamSettings:
    """An InferModel stream's configuration (shared by every ``InferStream`` wrapper of it)."""

    stream: _StreamDef
    format_type: FormatType
    score_threshold: float | None = None
    iou_threshold: float | None = None
    max_proposals: int | None = None
    nms_setters_used: bool = False

    @property
    def classes(self) -> int:
        assert self.stream.nms is not None
        return int(self.stream.nms["classes"])

    @property
    def max_boxes(self) -> int:
        assert self.stream.nms is not None
        return (
            self.max_proposals
            if self.max_proposals is not None
            else int(self.stream.nms["max_boxes_per_class"])
        )

    def shape(self) -> list[int]:
        if self.stream.nms is not None:
            return [nms_frame_size(self.classes, self.max_boxes)]
        return list(self.stream.shape)

    def dtype(self) -> np.dtype[Any]:
        if self.format_type is FormatType.AUTO:
            return np.dtype(self.stream.dtype)
        return _FORMAT_DTYPES[self.format_type]

    def frame_bytes(self) -> int:
        return int(np.prod(self.shape())) * self.dtype().itemsize


def _build_infer_model_classes(state: FakeHailoState, order: type[enum.Enum]) -> dict[str, type]:
    nms_order = order["HAILO_NMS" if state.version < (4, 19) else "HAILO_NMS_BY_CLASS"]

    class InferModel:
        class InferStream:
            def __init__(self, settings: _StreamSettings) -> None:
                self._settings = settings

            @property
            def name(self) -> str:
                return self._settings.stream.name

            @property
            def shape(self) -> list[int]:
                return self._settings.shape()

            @property
            def format(self) -> HailoFormat:
                settings = self._settings
                kind = settings.format_type
                if kind is FormatType.AUTO:
                    kind = FormatType[settings.stream.dtype.upper()]
                return HailoFormat(kind, nms_order if settings.stream.nms is not None else order["NHWC"])

            def set_format_type(self, type: FormatType) -> None:
                if not isinstance(type, FormatType):
                    raise TypeError(f"set_format_type(): incompatible function arguments: {type!r}")
                state.record("set_format_type", self.name, type.name)
                self._settings.format_type = type

            def set_format_order(self, order_: Any) -> None:
                state.record("set_format_order", self.name, getattr(order_, "name", order_))

            @property
            def quant_infos(self) -> list[QuantInfo]:
                stream = self._settings.stream
                top = float(np.iinfo(np.dtype(stream.dtype)).max) if stream.dtype != "float32" else 1.0
                low = (0 - stream.zero_point) * stream.scale
                return [
                    QuantInfo(
                        float(stream.zero_point),
                        float(stream.scale),
                        low,
                        (top - stream.zero_point) * stream.scale,
                    )
                ]

            @property
            def is_nms(self) -> bool:
                return self._settings.stream.nms is not None

            def set_nms_score_threshold(self, threshold: float) -> None:
                state.record("set_nms_score_threshold", self.name, float(threshold))
                self._settings.score_threshold = float(threshold)
                self._settings.nms_setters_used = True

            def set_nms_iou_threshold(self, threshold: float) -> None:
                state.record("set_nms_iou_threshold", self.name, float(threshold))
                self._settings.iou_threshold = float(threshold)
                self._settings.nms_setters_used = True

            def set_nms_max_proposals_per_class(self, max_proposals: int) -> None:
                state.record("set_nms_max_proposals_per_class", self.name, int(max_proposals))
                self._settings.max_proposals = int(max_proposals)
                self._settings.nms_setters_used = True

        def __init__(self, network: _Network, vdevice: Any, hef_source: str | bytes) -> None:
            self._network = network
            self._vdevice = vdevice
            self._hef_path = hef_source
            self._hef: Any = None
            self._batch_size = 0  # HAILO_DEFAULT_BATCH_SIZE
            self._settings = {
                s.name: _StreamSettings(s, FormatType.UINT8 if s.direction == "input" else FormatType.AUTO)
                for s in [network.input, *network.outputs]
            }

        @property
        def hef(self) -> Any:
            if not self._hef:
                self._hef = HEF(self._hef_path)
            return self._hef

        def set_batch_size(self, batch_size: int) -> None:
            state.record("set_batch_size", int(batch_size))
            if int(batch_size) < 0:
                raise state.exception("HAILO_INVALID_ARGUMENT", f"Invalid batch size {batch_size}")
            self._batch_size = int(batch_size)

        def set_power_mode(self, power_mode: Any) -> None:
            state.record("set_power_mode", power_mode)

        @property
        def input_names(self) -> list[str]:
            return [self._network.input.name]

        @property
        def output_names(self) -> list[str]:
            return [s.name for s in self._network.outputs]

        @property
        def inputs(self) -> list[InferModel.InferStream]:
            return [self.InferStream(self._settings[name]) for name in self.input_names]

        @property
        def outputs(self) -> list[InferModel.InferStream]:
            return [self.InferStream(self._settings[name]) for name in self.output_names]

        def _named(self, names: list[str], name: str) -> InferModel.InferStream:
            if name == "" and len(names) == 1:
                name = names[0]
            if name not in names:
                raise state.exception("HAILO_NOT_FOUND", f"Stream {name!r} not found (streams: {names})")
            return self.InferStream(self._settings[name])

        def input(self, name: str = "") -> InferModel.InferStream:
            return self._named(self.input_names, name)

        def output(self, name: str = "") -> InferModel.InferStream:
            return self._named(self.output_names, name)

        def configure(self) -> ConfiguredInferModel:
            state.record("configure")
            if self._vdevice._vdevice is None:
                raise state.exception("HAILO_INVALID_OPERATION", "configure() on a released VDevice")
            for settings in self._settings.values():
                stream = settings.stream
                if stream.direction == "input" and settings.format_type not in (
                    FormatType.UINT8,
                    FormatType.AUTO,
                ):
                    raise AssertionError(
                        f"fake HailoRT: input format {settings.format_type.name} is not emulated; "
                        "edgecv feeds the device uint8 frames (FormatType.UINT8)"
                    )
                if stream.nms is None and settings.nms_setters_used:
                    raise state.exception(
                        "HAILO_INVALID_OPERATION",
                        f"NMS setters used on {stream.name}, which has no NMS on the CPU",
                    )
                if stream.nms is not None and settings.format_type not in (
                    FormatType.FLOAT32,
                    FormatType.AUTO,
                ):
                    raise AssertionError(
                        f"fake HailoRT: NMS output format {settings.format_type.name} is not emulated "
                        "(use FLOAT32)"
                    )
            batch = self._batch_size or self._network.batch_size
            return ConfiguredInferModel(self, batch)

    class ConfiguredInferModel:
        class Bindings:
            class InferStream:
                def __init__(self, settings: _StreamSettings) -> None:
                    self._settings = settings
                    self._buffer: npt.NDArray[Any] | None = None

                def set_buffer(self, buffer: npt.NDArray[Any]) -> None:
                    if not isinstance(buffer, np.ndarray):
                        raise TypeError(
                            f"set_buffer(): incompatible function arguments: {type(buffer).__name__}"
                        )
                    if not buffer.flags.c_contiguous:
                        raise HailoRTException("Buffer must be C_CONTIGUOUS")
                    state.record("set_buffer", self._settings.stream.name)
                    self._buffer = buffer

                def get_buffer(self, tf_format: bool | None = False) -> Any:
                    buffer = self._buffer
                    if tf_format is None or self._settings.stream.nms is None or buffer is None:
                        return buffer
                    flat = buffer.reshape(-1).view(np.float32)
                    classes = self._settings.classes
                    if tf_format:
                        padded = np.zeros((classes, self._settings.max_boxes, BBOX_PARAMS), np.float32)
                        for index, rows in enumerate(unpack_nms(flat, classes)):
                            padded[index, : len(rows)] = rows
                        return np.swapaxes(padded, 1, 2)
                    per_class = unpack_nms(flat, classes)
                    return [per_class] if state.version < (4, 19) else per_class

            def __init__(self, model: ConfiguredInferModel) -> None:
                self._model = model
                self._inputs: dict[str, ConfiguredInferModel.Bindings.InferStream] = {}
                self._outputs: dict[str, ConfiguredInferModel.Bindings.InferStream] = {}

            def _stream(
                self, names: list[str], name: str, cache: dict[str, ConfiguredInferModel.Bindings.InferStream]
            ) -> ConfiguredInferModel.Bindings.InferStream:
                if name == "" and len(names) == 1:
                    name = names[0]
                if name not in names:
                    raise state.exception("HAILO_NOT_FOUND", f"Stream {name!r} not found (streams: {names})")
                if name not in cache:
                    cache[name] = self.InferStream(self._model._settings[name])
                return cache[name]

            def input(self, name: str = "") -> ConfiguredInferModel.Bindings.InferStream:
                return self._stream(self._model._input_names, name, self._inputs)

            def output(self, name: str = "") -> ConfiguredInferModel.Bindings.InferStream:
                return self._stream(self._model._output_names, name, self._outputs)

            def get(self) -> ConfiguredInferModel.Bindings:
                return self

        def __init__(self, infer_model: InferModel, batch: int) -> None:
            # Settings are fixed at configure(): later InferModel changes do not reach this model.
            self._settings = {
                name: _StreamSettings(**vars(settings)) for name, settings in infer_model._settings.items()
            }
            self._configured_infer_model: _Pipeline | None = _Pipeline(
                state, infer_model._network, infer_model._vdevice, self._settings, batch
            )
            self._input_names = infer_model.input_names
            self._output_names = infer_model.output_names
            self._infer_model = infer_model

        def __enter__(self) -> ConfiguredInferModel:
            return self

        def __exit__(self, *args: object) -> None:
            pipeline = self._configured_infer_model
            self._configured_infer_model = None
            if pipeline is not None:
                pipeline.close(record=False)

        def __del__(self) -> None:
            pipeline = getattr(self, "_configured_infer_model", None)
            if pipeline is not None:
                pipeline.close(record=False)

        def _pipeline(self, call: str) -> _Pipeline:
            pipeline = self._configured_infer_model
            if pipeline is None:  # what pyhailort does after __exit__
                raise AttributeError(f"'NoneType' object has no attribute '{call}'")
            return pipeline

        def activate(self) -> None:
            self._pipeline("activate").activate()

        def deactivate(self) -> None:
            self._pipeline("deactivate")
            state.record("deactivate")

        def create_bindings(
            self,
            input_buffers: Mapping[str, npt.NDArray[Any]] | None = None,
            output_buffers: Mapping[str, npt.NDArray[Any]] | None = None,
        ) -> ConfiguredInferModel.Bindings:
            self._pipeline("create_bindings").check_usable()
            state.record("create_bindings")
            bindings = self.Bindings(self)
            for name, buffer in (input_buffers or {}).items():
                bindings.input(name).set_buffer(buffer)
            for name, buffer in (output_buffers or {}).items():
                bindings.output(name).set_buffer(buffer)
            return bindings

        def wait_for_async_ready(self, timeout_ms: int = 1000, frames_count: int = 1) -> None:
            self._pipeline("wait_for_async_ready").wait_ready(timeout_ms, frames_count)

        def run(self, bindings: Iterable[ConfiguredInferModel.Bindings], timeout: int) -> None:
            state.record("run", timeout)
            job = self.run_async(bindings)
            job.wait(timeout)

        def run_async(
            self,
            bindings: Iterable[ConfiguredInferModel.Bindings],
            callback: Callable[..., Any] | None = None,
        ) -> AsyncInferJob:
            frames = list(bindings)  # a single Bindings is not iterable: TypeError, as in pyhailort
            return AsyncInferJob(self._pipeline("run_async").submit(self, frames, callback))

        def get_async_queue_size(self) -> int:
            return self._pipeline("get_async_queue_size").queue_size

        def shutdown(self) -> None:
            self._pipeline("shutdown").close(record=True)

        def set_scheduler_timeout(self, timeout_ms: int) -> None:
            state.record("set_scheduler_timeout", timeout_ms)

        def set_scheduler_threshold(self, threshold: int) -> None:
            state.record("set_scheduler_threshold", threshold)

        def set_scheduler_priority(self, priority: int) -> None:
            state.record("set_scheduler_priority", priority)

    class HEF:
        def __init__(self, hef_source: str | bytes) -> None:
            self._network = _read_hef(hef_source, state.version, state.log)
            self._path = hef_source if isinstance(hef_source, str) else None

        @property
        def path(self) -> str | None:
            return self._path

        def get_network_group_names(self) -> list[str]:
            return [self._network.name]

        def get_networks_names(self, network_group_name: str | None = None) -> list[str]:
            return [f"{self._network.name}/{self._network.name}"]

        def _info(self, stream: _StreamDef) -> VStreamInfo:
            if stream.nms is not None:
                nms = NmsShape(int(stream.nms["classes"]), int(stream.nms["max_boxes_per_class"]))
                return VStreamInfo(
                    stream,
                    self._network.name,
                    HailoFormat(FormatType.FLOAT32, nms_order),
                    QuantInfo(0.0, 1.0, 0.0, 1.0),
                    nms,
                )
            fmt = HailoFormat(FormatType[stream.dtype.upper()], order["NHWC"])
            return VStreamInfo(
                stream, self._network.name, fmt, QuantInfo(stream.zero_point, stream.scale, 0.0, 0.0), None
            )

        def get_input_vstream_infos(self, name: str | None = None) -> list[VStreamInfo]:
            return [self._info(self._network.input)]

        def get_output_vstream_infos(self, name: str | None = None) -> list[VStreamInfo]:
            return [self._info(s) for s in self._network.outputs]

        def get_all_vstream_infos(self, name: str | None = None) -> list[VStreamInfo]:
            return self.get_input_vstream_infos() + self.get_output_vstream_infos()

        def get_sorted_output_names(self, network_group_name: str | None = None) -> list[str]:
            return [s.name for s in self._network.outputs]

    return {"InferModel": InferModel, "ConfiguredInferModel": ConfiguredInferModel, "HEF": HEF}


class AsyncInferJob:
    def __init__(self, job: _Job) -> None:
        self._job = job

    def wait(self, timeout_ms: int) -> None:
        job = self._job
        job.state.record("wait", job.id, timeout_ms)
        if not job.done.wait(timeout_ms / 1000):
            raise job.state.exception("HAILO_TIMEOUT", f"Waiting for async job {job.id} failed with timeout")
        if job.exception is not None:
            raise job.exception


@dataclass
class _Job:
    id: int
    state: FakeHailoState
    frames: list[tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]]
    callback: Callable[..., Any] | None
    done: threading.Event = field(default_factory=threading.Event)
    exception: BaseException | None = None


_JOB_IDS = itertools.count(1)


class _Pipeline:
    """The device side of a configured model: a FIFO of jobs and the worker that runs them."""

    def __init__(
        self,
        state: FakeHailoState,
        network: _Network,
        vdevice: Any,
        settings: dict[str, _StreamSettings],
        batch: int,
    ) -> None:
        self.state = state
        self.network = network
        self.vdevice = vdevice
        self.settings = settings
        self.batch = batch
        self.queue_size = max(state.queue_size, batch)
        self.scheduled = self.vdevice._params.scheduling_algorithm is not HailoSchedulingAlgorithm.NONE
        self.active = False
        self.condition = threading.Condition()
        self.queue: deque[_Job] = deque()
        self.stalled: list[_Job] = []
        self.in_flight: list[_Job] = []  # queued, running or stalled: not finished
        self.outstanding = 0
        self.closed = False
        self.down = False
        with state.lock:
            state.live_models.append(self)
        self.worker = threading.Thread(target=self._work, name="fake-hailort-worker", daemon=True)
        self.worker.start()

    # --- caller side
    def check_usable(self) -> None:
        if self.closed:
            raise self.state.exception("HAILO_INVALID_OPERATION", "The configured model was shut down")
        if self.vdevice._vdevice is None:
            raise self.state.exception("HAILO_INVALID_OPERATION", "The VDevice of this model was released")
        if self.down:
            raise self.state.exception("HAILO_STREAM_ABORT", "The pipeline was shut down after an error")

    def activate(self) -> None:
        self.state.record("activate")
        if self.scheduled:
            raise self.state.exception(
                "HAILO_INVALID_OPERATION", "activate() is invalid when the scheduler is enabled"
            )
        self.active = True

    def wait_ready(self, timeout_ms: int, frames_count: int) -> None:
        self.state.record("wait_for_async_ready", timeout_ms, frames_count)
        self.state.check_callbacks()
        self.check_usable()
        with self.condition:
            ready = self.condition.wait_for(
                lambda: self.closed or self.outstanding + frames_count <= self.queue_size, timeout_ms / 1000
            )
        self.check_usable()
        if not ready:
            raise self.state.exception(
                "HAILO_TIMEOUT",
                f"wait_for_async_ready: {self.outstanding} frames in flight, queue size {self.queue_size}",
            )

    def submit(self, model: Any, frames: list[Any], callback: Callable[..., Any] | None) -> _Job:
        state = self.state
        state.record("run_async", len(frames))
        state.check_callbacks()
        self.check_usable()
        if not self.scheduled and not self.active:
            raise state.exception(
                "HAILO_NETWORK_GROUP_NOT_ACTIVATED", "run_async without the scheduler needs activate()"
            )
        buffers = [self._validated(model, bindings) for bindings in frames]
        with self.condition:
            if self.outstanding + len(frames) > self.queue_size:
                raise state.exception(
                    "HAILO_QUEUE_IS_FULL",
                    f"run_async: {self.outstanding} frames in flight, queue size {self.queue_size}",
                )
            self._check_not_in_flight(buffers)
            job = _Job(next(_JOB_IDS), state, buffers, callback)
            self.queue.append(job)
            self.in_flight.append(job)
            self.outstanding += len(frames)
            state.max_in_flight = max(state.max_in_flight, sum(m.outstanding for m in state.live_models))
            self.condition.notify_all()
        return job

    def _validated(
        self, model: Any, bindings: Any
    ) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
        if bindings._model is not model:
            raise TypeError(
                "run_async(): bindings must come from this ConfiguredInferModel's create_bindings()"
            )
        found: list[dict[str, npt.NDArray[Any]]] = []
        for names, side in ((model._input_names, "input"), (model._output_names, "output")):
            buffers: dict[str, npt.NDArray[Any]] = {}
            for name in names:
                stream = getattr(bindings, side)(name)
                buffer = stream._buffer
                settings = self.settings[name]
                if buffer is None:
                    raise self.state.exception(
                        "HAILO_INVALID_OPERATION", f"{side.capitalize()} buffer for '{name}' is not set"
                    )
                if buffer.nbytes != settings.frame_bytes():
                    raise self.state.exception(
                        "HAILO_INVALID_OPERATION",
                        f"{side.capitalize()} buffer size {buffer.nbytes} is different than expected "
                        f"{settings.frame_bytes()} for {side} '{name}'",
                    )
                if buffer.dtype != settings.dtype():
                    raise AssertionError(
                        f"fake HailoRT: the {side} buffer of {name!r} is {buffer.dtype}, the stream's "
                        f"format is {settings.dtype()} (same size: real HailoRT would reinterpret the bytes)"
                    )
                buffers[name] = buffer
            found.append(buffers)
        return found[0], found[1]

    def _check_not_in_flight(self, frames: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """No buffer the device writes may be in use by another job in flight, nor an input be
        written by one (several frames may read the same input buffer: the device only reads it)."""
        reads: list[npt.NDArray[Any]] = []
        writes: list[npt.NDArray[Any]] = []
        for inputs, outputs in [frame for job in self.in_flight for frame in job.frames]:
            reads.extend(inputs.values())
            writes.extend(outputs.values())
        for inputs, outputs in frames:
            for buffer in inputs.values():
                if any(np.shares_memory(buffer, other) for other in writes):
                    raise AssertionError(self._shared_buffer_message)
            for buffer in outputs.values():
                if any(np.shares_memory(buffer, other) for other in reads + writes):
                    raise AssertionError(self._shared_buffer_message)
            reads.extend(inputs.values())
            writes.extend(outputs.values())

    _shared_buffer_message = (
        "fake HailoRT: a buffer of this job is also bound to a frame in flight that the device writes "
        "into; real HailoRT would overwrite it (give every in-flight frame its own output buffers)"
    )

    def close(self, *, record: bool) -> None:
        state = self.state
        if record:
            state.record("shutdown")
        with self.condition:
            if self.closed:
                return
            self.closed = True
            pending = list(self.queue) + self.stalled
            self.queue.clear()
            self.stalled = []
            self.condition.notify_all()
        if threading.current_thread() is not self.worker:
            self.worker.join(timeout=10)
        for job in pending:  # HailoRT aborts what was still queued
            self._finish(job, state.exception("HAILO_STREAM_ABORT"))
        with state.lock:
            if self in state.live_models:
                state.live_models.remove(self)

    # --- device side
    def _work(self) -> None:
        state = self.state
        while True:
            with self.condition:
                self.condition.wait_for(lambda: self.closed or bool(self.queue))
                if self.closed:
                    return
            while not state.gate.wait(0.02):
                if self.closed:
                    return
            with self.condition:
                burst: list[_Job] = []
                frames = 0
                while self.queue and (not burst or frames + len(self.queue[0].frames) <= self.batch):
                    job = self.queue.popleft()
                    burst.append(job)
                    frames += len(job.frames)
            if burst:
                with state.lock:
                    state.bursts.append(frames)
            for job in burst:
                self._run(job)

    def _run(self, job: _Job) -> None:
        state = self.state
        with state.lock:
            stall = state._stall > 0
            failure = state._failures.popleft() if not stall and state._failures else None
            if stall:
                state._stall -= 1
        if stall:
            with self.condition:
                self.stalled.append(job)
            return
        if failure is not None:
            status, pipeline_down = failure
            self._finish(job, state.exception(status, f"Async infer job {job.id} failed with {status}"))
            if pipeline_down:
                self._bring_down()
            return
        try:
            for inputs, outputs in job.frames:
                self._compute(inputs, outputs)
        except Exception as exc:  # a fake bug: surface it through the job rather than kill the worker
            self._finish(job, exc)
            return
        self._finish(job, None)

    def _bring_down(self) -> None:
        with self.condition:
            self.down = True
            pending = list(self.queue)
            self.queue.clear()
        for job in pending:
            self._finish(job, self.state.exception("HAILO_STREAM_ABORT"))

    def _compute(self, inputs: dict[str, npt.NDArray[Any]], outputs: dict[str, npt.NDArray[Any]]) -> None:
        network = self.network
        height, width, channels = network.input.shape
        frame = inputs[network.input.name].reshape(-1).view(np.uint8).reshape(height, width, channels).copy()
        results = network.infer(frame)
        for name, buffer in outputs.items():
            settings = self.settings[name]
            stream = settings.stream
            target = buffer.reshape(-1).view(settings.dtype())
            if stream.nms is not None:
                per_class = nms_by_class(
                    results[stream.onnx_name],
                    (height, width),
                    score_threshold=settings.score_threshold
                    if settings.score_threshold is not None
                    else float(stream.nms["score_threshold"]),
                    iou_threshold=settings.iou_threshold
                    if settings.iou_threshold is not None
                    else float(stream.nms["iou_threshold"]),
                    max_boxes_per_class=settings.max_boxes,
                )
                target[:] = pack_nms(per_class, settings.max_boxes)
                continue
            quantized = quantize(
                to_hailo_layout(results[stream.onnx_name]), stream.scale, stream.zero_point, stream.dtype
            )
            device_values = (
                quantized
                if settings.dtype() != np.float32
                else dequantize(quantized, stream.scale, stream.zero_point)
            )
            target[:] = device_values.reshape(-1)

    def _finish(self, job: _Job, exception: BaseException | None) -> None:
        state = self.state
        job.exception = exception
        if job.callback is not None:
            try:
                job.callback(completion_info=AsyncInferCompletionInfo(exception))
            except BaseException as exc:  # reported by check_callbacks
                state.callback_errors.append(exc)
        state.record("callback", job.id, None if exception is None else type(exception).__name__)
        with self.condition:
            self.outstanding -= len(job.frames)
            self.in_flight.remove(job)
            self.condition.notify_all()
        job.done.set()


# --- VDevice ----------------------------------------------------------------------------------------


class _VDeviceBase:
    _fake: FakeHailoState
    _classes: dict[str, type]

    @staticmethod
    def create_params() -> VDeviceParams:
        return VDeviceParams()

    def __init__(self, params: VDeviceParams | None = None, *, device_ids: list[str] | None = None) -> None:
        state = self._fake
        self._vdevice: object | None = None
        self._params = params if params is not None else VDeviceParams()
        state.record("VDevice", self._params.scheduling_algorithm.name, self._params.group_id)
        state.vdevice_params.append(self._params)
        if state.vdevice_status is not None:
            raise state.exception(state.vdevice_status, f"Failed to create vdevice: {state.vdevice_status}")
        holders = [
            v
            for v in state.live_vdevices
            if v._params.group_id != self._params.group_id or v._params.group_id == "UNIQUE"
        ]
        if not state.devices or state.busy or holders:
            raise state.exception(
                "HAILO_OUT_OF_PHYSICAL_DEVICES",
                "Failed to create vdevice. there are not enough free devices. requested: 1, found: 0",
            )
        self._vdevice = object()
        with state.lock:
            state.live_vdevices.append(self)

    def __enter__(self) -> _VDeviceBase:
        return self

    def __exit__(self, *args: object) -> Literal[False]:
        self.release()
        return False

    def __del__(self) -> None:
        if getattr(self, "_vdevice", None) is not None:
            self.release()

    def release(self) -> None:
        if self._vdevice is not None:
            self._vdevice = None
            state = self._fake
            with state.lock:
                if self in state.live_vdevices:
                    state.live_vdevices.remove(self)
            state.record("VDevice.release")

    def _handle(self, call: str) -> object:
        if self._vdevice is None:  # pyhailort calls into its released C++ handle (None)
            raise AttributeError(f"'NoneType' object has no attribute '{call}'")
        return self._vdevice

    def get_physical_devices_ids(self) -> list[str]:
        self._handle("get_physical_devices_ids")
        return [PI5_DEVICE_ID]

    def get_physical_devices(self) -> list[Device]:
        device = self._classes["Device"]
        return [device(device_id) for device_id in self.get_physical_devices_ids()]

    def configure(self, hef: Any, configure_params_by_name: Mapping[str, Any] | None = None) -> Any:
        raise AssertionError("fake HailoRT: the InferVStreams-era configure() path is not emulated")


class _InferModelVDevice(_VDeviceBase):
    def create_infer_model(self, hef_source: str | bytes, name: str = "") -> Any:
        state = self._fake
        self._handle("create_infer_model_from_file")
        state.record("create_infer_model", hef_source if isinstance(hef_source, str) else "<bytes>")
        network = _read_hef(hef_source, state.version, state.log)
        if network.hw_arch not in RUNS_ON.get(state.arch, set()):
            status = (
                "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE" if state.version >= (4, 19) else "HAILO_INVALID_HEF"
            )
            raise state.exception(
                status,
                f"HEF format is not compatible with device. Device arch: {state.arch}, "
                f"HEF arch: {HEF_ARCHS[network.hw_arch]}",
            )
        if network.hw_arch != state.arch.lower():
            state.log.append(
                f"HEF was compiled for {HEF_ARCHS[network.hw_arch]} device, while the device itself is "
                f"{state.arch}. This will result in lower performance."
            )
        return self._classes["InferModel"](network, self, hef_source)


class _NotEmulated:
    """An InferVStreams-era name: present (as in old HailoRT) but not emulated."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"fake HailoRT: {type(self).__name__} (the InferVStreams API) is not emulated")

    @staticmethod
    def make(*args: object, **kwargs: object) -> Any:
        raise AssertionError("fake HailoRT: the InferVStreams API is not emulated")

    @staticmethod
    def create_from_hef(*args: object, **kwargs: object) -> Any:
        raise AssertionError("fake HailoRT: the InferVStreams API is not emulated")


class HailoStreamInterface(enum.Enum):
    PCIe = 0
    INTEGRATED = 1
    ETH = 2
    MIPI = 3


# Names every version exports at the top level (pyhailort's __all__, the ones edgecv could touch).
_TOP_LEVEL = (
    "HEF",
    "ConfigureParams",
    "FormatType",
    "FormatOrder",
    "HailoStreamInterface",
    "InputVStreamParams",
    "OutputVStreamParams",
    "InputVStreams",
    "OutputVStreams",
    "InferVStreams",
    "HailoFormatFlags",
    "Device",
    "VDevice",
    "HailoRTException",
    "HailoSchedulingAlgorithm",
    "HailoRTStreamAbortedByUser",
)


def fake_hailo(
    version: str = DEFAULT_VERSION,
    arch: str = DEFAULT_ARCH,
    *,
    devices: int = 1,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    firmware: str | None = None,
    board_name: str = "Hailo-8",
    temperature: tuple[float, float] = (51.0, 52.5),
) -> ModuleType:
    """A fake ``hailo_platform`` module of HailoRT ``version`` with ``devices`` device(s) of ``arch``
    ("HAILO8" or "HAILO8L"). ``firmware``: the device firmware (default: ``version``).
    ``module.fake`` is its ``FakeHailoState``."""
    if arch not in RUNS_ON:
        raise ValueError(f"arch must be one of {sorted(RUNS_ON)}, got {arch!r}")
    parsed = parse_version(version)
    fw = tuple(int(part) for part in (firmware or version).split(".")[:3])
    state = FakeHailoState(
        parsed,
        arch,
        devices=devices,
        queue_size=queue_size,
        firmware=(fw[0], fw[1], fw[2]),
        board_name=board_name,
        temperature=temperature,
    )
    order = _format_order(parsed)
    classes: dict[str, type] = {}
    device = type("Device", (Device,), {"_fake": state})
    classes["Device"] = device
    has_infer_model = parsed >= (4, 16)
    vdevice_base = _InferModelVDevice if has_infer_model else _VDeviceBase
    classes["VDevice"] = type("VDevice", (vdevice_base,), {"_fake": state, "_classes": classes})
    if has_infer_model:
        classes.update(_build_infer_model_classes(state, order))
    else:
        classes["HEF"] = type("HEF", (_NotEmulated,), {})

    inner = ModuleType("hailo_platform.pyhailort.pyhailort")
    members: dict[str, Any] = {
        **classes,
        "FormatType": FormatType,
        "FormatOrder": order,
        "HailoFormatFlags": FormatFlags,
        "HailoSchedulingAlgorithm": HailoSchedulingAlgorithm,
        "HailoStreamInterface": HailoStreamInterface,
        "DeviceArchitectureTypes": DeviceArchitectureTypes,
        "ConfigureParams": type("ConfigureParams", (_NotEmulated,), {}),
        "InputVStreamParams": type("InputVStreamParams", (_NotEmulated,), {}),
        "OutputVStreamParams": type("OutputVStreamParams", (_NotEmulated,), {}),
        "InputVStreams": type("InputVStreams", (_NotEmulated,), {}),
        "OutputVStreams": type("OutputVStreams", (_NotEmulated,), {}),
        "InferVStreams": type("InferVStreams", (_NotEmulated,), {}),
        "AsyncInferCompletionInfo": AsyncInferCompletionInfo,
        "HailoRTException": HailoRTException,
        "HailoRTTimeout": HailoRTTimeout,
        "HailoRTStreamAborted": HailoRTStreamAborted,
        "HailoRTStreamAbortedByUser": HailoRTStreamAbortedByUser,
        "HailoRTInvalidOperationException": HailoRTInvalidOperationException,
        "HailoRTInvalidArgumentException": HailoRTInvalidArgumentException,
        "HailoRTNotFoundException": HailoRTNotFoundException,
        "HailoRTInvalidHEFException": HailoRTInvalidHEFException,
        "HailoRTNetworkGroupNotActivatedException": HailoRTNetworkGroupNotActivatedException,
        "HailoCommunicationClosedException": HailoCommunicationClosedException,
    }
    if parsed >= (4, 19):
        members["HailoRTHEFNotCompatibleWithDevice"] = HailoRTHEFNotCompatibleWithDevice
        members["HailoRTDriverOperationFailedException"] = HailoRTDriverOperationFailedException
        members["HailoRTPCIeDriverException"] = HailoRTDriverOperationFailedException
    else:
        members["HailoRTPCIeDriverException"] = HailoRTPCIeDriverException
    if has_infer_model:
        members["AsyncInferJob"] = AsyncInferJob
    for name, value in members.items():
        setattr(inner, name, value)

    module = ModuleType("hailo_platform")
    exported = [*_TOP_LEVEL, *(["AsyncInferJob"] if has_infer_model else [])]
    for name in exported:
        setattr(module, name, members[name])
    package = ModuleType("hailo_platform.pyhailort")
    setattr(package, "pyhailort", inner)  # noqa: B010 - mypy knows no attributes of a ModuleType
    for name, value in {"__version__": version, "pyhailort": package, "fake": state}.items():
        setattr(module, name, value)
    return module


def install_fake(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> ModuleType:
    """Put ``fake_hailo(**kwargs)`` behind the plugin's seam (``edgecv_hailo.runtime.load_hailo``,
    and ``availability`` saying yes); returns the module."""
    from edgecv.backend import Availability

    hailo = fake_hailo(**kwargs)
    monkeypatch.setattr("edgecv_hailo.runtime.load_hailo", lambda: hailo)
    monkeypatch.setattr("edgecv_hailo.runtime.availability", lambda *args, **kw: Availability(True))
    return hailo


def letterboxed_rgb(image_path: Path, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """The frame edgecv feeds a Hailo YOLO HEF: ``image_path`` letterboxed (centred, 114) to
    ``size`` (height, width), RGB, uint8 (H, W, 3)."""
    from edgecv.preprocess import letterbox

    image = cast("npt.NDArray[np.uint8] | None", cv2.imread(str(image_path), cv2.IMREAD_COLOR))
    assert image is not None, f"cannot read {image_path}"
    canvas, _ = letterbox(image, size)
    return np.ascontiguousarray(canvas[..., ::-1])

"""The seam between edgecv and HailoRT: finding it, and running one HEF on a Hailo device.

Everything here calls HailoRT's Python API (``hailo_platform``, the InferModel API of HailoRT
4.16+; the stubs in ``typings/hailo_platform`` say which version they follow) on the module it is
*given*: ``HailoRunner.open(hailo, hef)``. ``load_hailo()`` returns the real module; tests pass a
fake that follows the real API's names, shapes, dtypes and call order (``tests/hailo_fakes.py``).
Callers look ``availability`` and ``load_hailo`` up on this module at call time, so tests can
replace them.

Nothing here imports HailoRT at module import time: ``edgecv backends`` imports the plugin on
every run, and the availability check only looks for the module and a device node.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.backend import Availability, BackendError, ConfigError, EdgecvError, ModelError, one_line

if TYPE_CHECKING:
    import hailo_platform
    from hailo_platform.pyhailort.pyhailort import (
        AsyncInferCompletionInfo,
        ConfiguredInferModel,
        Device,
        InferModel,
        VDevice,
    )

LOG = logging.getLogger("edgecv.hailo")

MIN_VERSION = (4, 16)
"""The first HailoRT with the InferModel API; older ones (InferVStreams only) are refused."""

DEVELOPER_ZONE = "https://hailo.ai/developer-zone/"
INSTALL_HINT = (
    "Raspberry Pi 5: sudo apt install hailo-all, then reboot. Elsewhere: install HailoRT, its PCIe "
    f"driver and the matching Python wheel (hailort-X.Y.Z-cpXY-cpXY-linux_*.whl) from {DEVELOPER_ZONE}; "
    "all three must be the same version"
)
DEVICE_HINT = (
    "Check that the Hailo module is seated and its driver loaded (ls /dev/hailo*; dmesg | grep hailo); "
    "on a Raspberry Pi 5: sudo apt install hailo-all, then reboot"
)
DRIVER_HINT = (
    "HailoRT, its PCIe driver (hailo_pci) and the firmware must be the same version: see dmesg | grep hailo "
    f"and reinstall them together ({DEVELOPER_ZONE}, or hailo-all on a Raspberry Pi 5)"
)

# HailoRT's architecture names -> what users call the chips.
DEVICE_NAMES = {
    "HAILO8": "Hailo-8",
    "HAILO8L": "Hailo-8L",
    "HAILO8_A0": "Hailo-8 (A0)",
    "HAILO15H": "Hailo-15H",
    "HAILO15M": "Hailo-15M",
    "HAILO15L": "Hailo-15L",
    "HAILO10H": "Hailo-10H",
}

BOX_PARAMS = 5
"""[y_min, x_min, y_max, x_max, score] per detection in HailoRT's NMS outputs."""


class HailoModule(Protocol):
    """The part of ``hailo_platform`` edgecv-hailo uses (typed by ``typings/hailo_platform``).

    The real module satisfies it (mypy checks that in ``load_hailo``); tests pass a fake module.
    """

    @property
    def VDevice(self) -> type[hailo_platform.VDevice]: ...
    @property
    def HailoSchedulingAlgorithm(self) -> type[hailo_platform.HailoSchedulingAlgorithm]: ...
    @property
    def FormatType(self) -> type[hailo_platform.FormatType]: ...
    @property
    def HailoRTException(self) -> type[hailo_platform.HailoRTException]: ...
    @property
    def __version__(self) -> str: ...


# --- availability: cheap, imports nothing ---------------------------------------------------------


def _module_problem() -> str | None:
    """Why ``hailo_platform`` cannot be found, or ``None``; does not import it."""
    try:
        spec = importlib.util.find_spec("hailo_platform")
    except (ImportError, ValueError) as exc:
        return f"HailoRT's Python package (hailo_platform) cannot be found: {one_line(exc)}"
    if spec is None:
        return "HailoRT's Python package (hailo_platform) is not installed"
    return None


def _device_problem(dev_root: Path) -> str | None:
    """Why no Hailo device node exists under ``dev_root``, or ``None``."""
    try:
        found = any(dev_root.glob("hailo*"))
    except OSError as exc:
        return f"{dev_root} cannot be listed: {one_line(exc)}"
    return None if found else f"no Hailo device found ({dev_root / 'hailo*'} does not exist)"


def availability(dev_root: Path = Path("/dev")) -> Availability:
    """Whether the ``hailo`` backend can run here: ``hailo_platform`` and a ``/dev/hailo*`` device."""
    missing_module = _module_problem()
    missing_device = _device_problem(dev_root)
    if missing_module and missing_device:
        return Availability(False, f"{missing_module}; {missing_device}", INSTALL_HINT)
    if missing_module:
        return Availability(False, missing_module, INSTALL_HINT)
    if missing_device:
        return Availability(False, missing_device, DEVICE_HINT)
    return Availability(True)


# --- the real HailoRT ----------------------------------------------------------------------------


def hailort_version(hailo: HailoModule) -> str:
    """``hailo_platform.__version__`` (``"4.21.0"``), or ``""`` when the module has none."""
    version = getattr(hailo, "__version__", "")
    return version if isinstance(version, str) else ""


def _version_tuple(text: str) -> tuple[int, ...] | None:
    match = re.match(r"(\d+)\.(\d+)", text.strip())
    return (int(match[1]), int(match[2])) if match else None


def check_version(hailo: HailoModule) -> None:
    """``BackendError`` unless ``hailo`` is HailoRT 4.16+ with the InferModel API."""
    text = hailort_version(hailo)
    found = _version_tuple(text)
    wanted = ".".join(map(str, MIN_VERSION))
    named = f"HailoRT {text}" if text else "This HailoRT (its version is unknown)"
    if found is None or found < MIN_VERSION or not hasattr(hailo.VDevice, "create_infer_model"):
        raise BackendError(
            f"{named} is too old: edgecv needs HailoRT {wanted} or newer (the InferModel API); "
            "older releases have only InferVStreams, which edgecv does not support",
            f"Install HailoRT {wanted}+ with its driver and Python wheel. {INSTALL_HINT}",
        )


def load_hailo() -> HailoModule:
    """The real ``hailo_platform`` module, checked to be new enough."""
    problem = _module_problem()
    if problem is not None:
        raise BackendError(problem, INSTALL_HINT)
    try:
        import hailo_platform
    except Exception as exc:  # a broken install: missing libhailort, version mismatch, ...
        raise BackendError(
            f"HailoRT's Python package (hailo_platform) cannot be imported: {one_line(exc)}", INSTALL_HINT
        ) from exc
    hailo: HailoModule = hailo_platform
    check_version(hailo)
    return hailo


def open_vdevice(hailo: HailoModule) -> VDevice:
    """A ``VDevice`` with HailoRT's scheduler on, so that several models and processes share the device."""
    params = hailo.VDevice.create_params()
    params.scheduling_algorithm = hailo.HailoSchedulingAlgorithm.ROUND_ROBIN
    return hailo.VDevice(params)


class _Shared:
    """The process's one ``VDevice`` for a HailoRT module, and how many users hold it."""

    def __init__(self, hailo: HailoModule, vdevice: VDevice) -> None:
        self.hailo = hailo  # kept alive, so its id() is not reused while the entry exists
        self.vdevice = vdevice
        self.users = 0


_shared: dict[int, _Shared] = {}
_shared_lock = threading.Lock()


def acquire_vdevice(hailo: HailoModule) -> VDevice:
    """The process's ``VDevice``, opened on first use and shared by every model and ``describe``.

    A physical device belongs to one ``VDevice`` at a time (HailoRT's default group is unique):
    a second ``VDevice`` in the same process would find no free device, so two models (two
    cameras) or ``edgecv doctor`` next to a running model share this one, and HailoRT's
    scheduler interleaves their frames. ``release_vdevice`` when done.
    """
    with _shared_lock:
        entry = _shared.get(id(hailo))
        if entry is None:
            entry = _Shared(hailo, open_vdevice(hailo))
            _shared[id(hailo)] = entry
        entry.users += 1
        return entry.vdevice


def release_vdevice(hailo: HailoModule, vdevice: VDevice | None) -> None:
    """Give back ``acquire_vdevice``'s device; the last user releases it."""
    if vdevice is None:
        return
    with _shared_lock:
        entry = _shared.get(id(hailo))
        if entry is None or entry.vdevice is not vdevice:
            entry = None
        else:
            entry.users -= 1
            if entry.users > 0:
                return
            del _shared[id(hailo)]
    _release(vdevice)


def describe(hailo: HailoModule | None = None) -> dict[str, Any]:
    """The attached Hailo device, no model loaded (``edgecv doctor``): type, firmware, HailoRT
    version, chip temperature, e.g. ``{"device": "Hailo-8L", "firmware": "4.20.0", "hailort":
    "4.20.0", "temperature_c": 51.0, ...}``. ``BackendError`` when HailoRT or the device is missing."""
    hailo = hailo if hailo is not None else load_hailo()
    described: dict[str, Any] = {"hailort": hailort_version(hailo)}
    vdevice: VDevice | None = None
    device: Device | None = None
    try:
        vdevice = acquire_vdevice(hailo)
        device = first_physical_device(vdevice)
        described.update(identify(device))
        temperature = chip_temperature(device)
        if temperature is not None:
            described["temperature_c"] = round(temperature, 1)
    except hailo.HailoRTException as exc:
        raise hailort_error(exc, "describing", Path("the device")) from exc
    finally:
        _release(device)
        release_vdevice(hailo, vdevice)
    return {key: value for key, value in described.items() if value != ""}


# --- HailoRT failures as edgecv errors --------------------------------------------------------------

_ARCHITECTURE = re.compile(r"\bHAILO(?:8L|8|10H|15H|15L|15M)\b")


def _statuses(exc: BaseException) -> set[str]:
    """The ``HAILO_*`` status names HailoRT put in the message."""
    return set(re.findall(r"\bHAILO_[A-Z0-9_]+\b", str(exc)))


def hailort_error(
    exc: BaseException, doing: str, hef: Path, *, device_architecture: str | None = None
) -> EdgecvError:
    """``exc``, raised by HailoRT while ``doing`` something with ``hef``, as one edgecv error.

    HailoRT raises ``HailoRTException`` subclasses named after its status codes, or a plain one
    whose message names the status (``... (HAILO_OUT_OF_PHYSICAL_DEVICES)``); both are read.
    """
    kind = type(exc).__name__
    statuses = _statuses(exc)
    said = one_line(exc)
    if kind == "HailoRTHEFNotCompatibleWithDevice" or "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE" in statuses:
        # HailoRT's message only points at hailort.log; the device can say what it is.
        named = sorted(set(_ARCHITECTURE.findall(str(exc))) - {device_architecture})
        target = f" (it names {', '.join(named)})" if named else ""
        device = DEVICE_NAMES.get(device_architecture or "", "")
        flag = {"Hailo-8L": " --hw-arch hailo8l", "Hailo-8": " --hw-arch hailo8"}.get(device, "")
        return ModelError(
            f"{hef.name} was compiled for another Hailo chip than this {device or 'device'}{target}",
            f"Compile it for this device: edgecv export --to hailo{flag} (hailo8l for a Hailo-8L, the "
            "Raspberry Pi AI Kit; hailo8 for a Hailo-8).",
        )
    if kind == "HailoRTInvalidHEFException" or "HAILO_INVALID_HEF" in statuses:
        return ModelError(
            f"{hef.name} is not a HEF this HailoRT can load: {said}",
            "Compile it again (edgecv export --to hailo) with the Dataflow Compiler release that matches "
            "this HailoRT.",
        )
    if kind == "HailoRTTimeout" or "HAILO_TIMEOUT" in statuses:
        return BackendError(
            f"HailoRT timed out {doing} {hef.name}",
            "The device may be overloaded or stuck: check dmesg | grep hailo, or raise timeout_ms.",
        )
    if kind in {"HailoRTStreamAborted", "HailoRTStreamAbortedByUser"} or "HAILO_STREAM_ABORT" in statuses:
        return BackendError(
            f"HailoRT aborted {doing} {hef.name} (the model was shut down, or an earlier frame failed)",
            "Load the model again; if frames keep failing, check dmesg | grep hailo.",
        )
    if statuses & {"HAILO_OUT_OF_PHYSICAL_DEVICES", "HAILO_DEVICE_IN_USE"}:
        return BackendError(
            f"No free Hailo device {doing} {hef.name}: none was found, or another process holds it ({said})",
            "Stop the other process, or share the device through HailoRT's scheduler service "
            f"(hailort.service). {DEVICE_HINT}",
        )
    driver = {"HailoRTDriverOperationFailedException", "HailoRTPCIeDriverException"}
    if kind in driver or any("DRIVER" in status for status in statuses):
        return BackendError(f"HailoRT's driver failed {doing} {hef.name}: {said}", DRIVER_HINT)
    if "not found in the system" in said:
        return BackendError(f"No Hailo device found {doing} {hef.name}", DEVICE_HINT)
    return BackendError(
        f"HailoRT failed {doing} {hef.name}: {said}",
        "See hailort.log in the working folder for HailoRT's details.",
    )


# --- one HEF on the device --------------------------------------------------------------------------


@attrs.frozen
class StreamInfo:
    """One input or output of a configured HEF, as edgecv binds it."""

    name: str
    shape: tuple[int, ...]
    """Tensors: HailoRT's (height, width, features); NMS outputs: (classes, max_boxes, 5)."""
    dtype: str
    """Numpy dtype name of the buffer edgecv binds: "uint8", "uint16" or "float32"."""
    scale: float | None = None
    """Raw quantized outputs: real = (q - zero_point) * scale."""
    zero_point: float | None = None
    nms: bool = False
    """An NMS-by-class output (then dtype float32)."""


RawOutput = npt.NDArray[Any] | list[npt.NDArray[np.float32]]
"""A tensor in its ``StreamInfo`` dtype/shape (no batch axis), or, for an NMS-by-class output, one
float32 array (n_i, 5) per class: rows [y_min, x_min, y_max, x_max, score] normalized to the input."""

Done = Callable[[list[RawOutput] | BaseException], None]


def parse_nms_by_class(
    buffer: npt.NDArray[np.float32], classes: int, max_boxes: int
) -> list[npt.NDArray[np.float32]]:
    """HailoRT's raw NMS-by-class frame as one (n, 5) array per class.

    The layout (HailoRT's own ``get_buffer`` parses it the same way, in every 4.x release): for each
    class in turn, a float count, then that many boxes of 5 floats; classes are packed back to back.
    Reading the buffer edgecv bound keeps this independent of how a release wraps ``get_buffer``'s
    result. A count the buffer cannot hold is a device fault, not a model to decode.
    """
    flat = buffer.reshape(-1)
    boxes: list[npt.NDArray[np.float32]] = []
    offset = 0
    for index in range(classes):
        count = float(flat[offset]) if offset < flat.size else math.nan
        end = offset + 1 + BOX_PARAMS * int(count) if math.isfinite(count) and count >= 0 else -1
        if not (
            math.isfinite(count) and count == int(count) and 0 <= count <= max_boxes and end <= flat.size
        ):
            raise BackendError(
                f"HailoRT returned a malformed NMS output (class {index} claims {count} boxes)",
                "Check the device (dmesg | grep hailo) and HailoRT's version against the HEF's.",
            )
        boxes.append(flat[offset + 1 : end].reshape(int(count), BOX_PARAMS))
        offset = end
    return boxes


@attrs.frozen
class _Output:
    info: StreamInfo
    buffer_shape: tuple[int, ...]
    """What HailoRT fills: ``info.shape`` for tensors, a flat float32 frame for NMS outputs."""


def _dtype_name(hailo: HailoModule, format_type: object) -> str | None:
    names: dict[object, str] = {
        hailo.FormatType.UINT8: "uint8",
        hailo.FormatType.UINT16: "uint16",
        hailo.FormatType.FLOAT32: "float32",
    }
    return names.get(format_type)


class HailoRunner:
    """A HEF configured on a Hailo device (through a ``VDevice`` with HailoRT's scheduler).

    ``run`` infers one frame and waits; ``submit`` queues one and returns, calling ``done`` from
    HailoRT's callback thread. Every frame gets its own bindings and buffers, which HailoRT fills
    while the frame is in flight. ``close`` waits for frames in flight, then releases the device.
    """

    def __init__(
        self,
        *,
        hailo: HailoModule,
        hef: Path,
        vdevice: VDevice,
        model: InferModel,
        configured: ConfiguredInferModel,
        input: StreamInfo,
        outputs: list[_Output],
        batch_size: int,
        timeout_ms: int,
    ) -> None:
        self._hailo = hailo
        self._hef = hef
        self._vdevice = vdevice
        self._model: InferModel | None = model
        self._configured: ConfiguredInferModel | None = configured
        self._outputs = outputs
        self._timeout_ms = timeout_ms
        self._state = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self._device: Device | None = None
        self._device_lock = threading.Lock()  # device queries must not hold up HailoRT's callbacks
        self.input = input
        self.outputs = tuple(output.info for output in outputs)
        self.batch_size = batch_size
        self.queue_size = max(1, batch_size, int(configured.get_async_queue_size()))

    # --- open ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        hailo: HailoModule,
        hef: Path,
        *,
        batch_size: int | None = None,
        float_outputs: bool = False,
        nms_score_threshold: float | None = None,
        nms_iou_threshold: float | None = None,
        nms_max_proposals: int | None = None,
        timeout_ms: int = 10000,
    ) -> HailoRunner:
        """Configure ``hef`` on the first free Hailo device.

        The input is bound as uint8 NHWC (the letterboxed frame as it is: no float tensor on the
        host). NMS outputs come as float32 by class; raw outputs stay in the HEF's quantized type
        (uint8/uint16, with scale/zero-point) unless ``float_outputs``. ``batch_size``: frames the
        device runs at once (default: HailoRT's choice for the HEF). ``nms_*`` override the
        thresholds compiled into the HEF's host-side NMS.
        """
        if not hef.is_file():
            raise ModelError(f"{hef} does not exist or is not a file", "Pass the path of a .hef file.")
        nms_settings = {
            "nms_score_threshold": nms_score_threshold,
            "nms_iou_threshold": nms_iou_threshold,
            "nms_max_proposals": nms_max_proposals,
        }
        asked_nms = {name: value for name, value in nms_settings.items() if value is not None}
        vdevice: VDevice | None = None
        configured: ConfiguredInferModel | None = None
        doing = "opening the device for"
        try:
            vdevice = acquire_vdevice(hailo)
            doing = "loading"
            model = vdevice.create_infer_model(_hef_source(hef))
            input_info = _bind_input(hailo, model, hef)
            outputs = _set_output_formats(hailo, model, hef, float_outputs, asked_nms)
            if batch_size is not None:
                model.set_batch_size(batch_size)
            doing = "configuring"
            configured = model.configure()
            # After configure: NMS settings may have changed the frame HailoRT writes.
            outputs = [_output_layout(hailo, model, hef, output) for output in outputs]
            runner = cls(
                hailo=hailo,
                hef=hef,
                vdevice=vdevice,
                model=model,
                configured=configured,
                input=input_info,
                outputs=outputs,
                batch_size=batch_size or 1,
                timeout_ms=timeout_ms,
            )
        except hailo.HailoRTException as exc:
            architecture = _device_architecture(vdevice) if vdevice is not None else None
            _abandon(hailo, configured, vdevice)
            if doing == "configuring" and asked_nms:
                raise ConfigError(
                    f"HailoRT refused {', '.join(asked_nms)} for {hef.name}: {one_line(exc)}",
                    "This HEF's NMS runs on the chip, where its thresholds are fixed: drop those options.",
                ) from exc
            raise hailort_error(exc, doing, hef, device_architecture=architecture) from exc
        except BaseException:
            _abandon(hailo, configured, vdevice)
            raise
        LOG.debug("HailoRT %s: %s configured, queue %d", hailort_version(hailo), hef.name, runner.queue_size)
        return runner

    # --- per frame ------------------------------------------------------------------------------

    def _bind(
        self, frame: npt.NDArray[np.uint8], *, own: bool
    ) -> tuple[ConfiguredInferModel, Any, list[npt.NDArray[Any]]]:
        """Fresh bindings for one frame: its own output buffers, ``frame`` as the input (a copy
        with ``own``: HailoRT reads it when the frame runs, after the caller may have reused it)."""
        if frame.dtype != np.uint8 or tuple(frame.shape) != self.input.shape:
            raise ConfigError(
                f"{self._hef.name} takes a uint8 {list(self.input.shape)} frame (height, width, channels), "
                f"got {frame.dtype} {list(frame.shape)}",
                "Prepare the frame with the model's own preprocessing (Model.preprocess).",
            )
        with self._state:
            configured = self._configured
            if self._closed or configured is None:
                raise BackendError(
                    f"The Hailo session for {self._hef.name} is closed", "Load the model again."
                )
        buffers = [np.empty(output.buffer_shape, dtype=output.info.dtype) for output in self._outputs]
        try:
            bindings = configured.create_bindings(
                output_buffers={
                    output.info.name: buffer for output, buffer in zip(self._outputs, buffers, strict=True)
                }
            )
            bindings.input().set_buffer(
                np.array(frame, order="C", copy=True) if own else np.ascontiguousarray(frame)
            )
        except self._hailo.HailoRTException as exc:
            raise hailort_error(exc, "binding a frame for", self._hef) from exc
        return configured, bindings, buffers

    def _collect(self, buffers: list[npt.NDArray[Any]]) -> list[RawOutput]:
        """The filled buffers of one frame as ``RawOutput``s (they belong to the caller)."""
        results: list[RawOutput] = []
        for output, buffer in zip(self._outputs, buffers, strict=True):
            info = output.info
            results.append(parse_nms_by_class(buffer, info.shape[0], info.shape[1]) if info.nms else buffer)
        return results

    def run(self, frame: npt.NDArray[np.uint8]) -> list[RawOutput]:
        """Infer one (height, width, channels) uint8 frame and wait for its outputs."""
        configured, bindings, buffers = self._bind(frame, own=False)
        try:
            configured.run([bindings], self._timeout_ms)
        except self._hailo.HailoRTException as exc:
            raise hailort_error(exc, "running", self._hef) from exc
        return self._collect(buffers)

    def submit(self, frame: npt.NDArray[np.uint8], done: Done) -> None:
        """Queue one frame; ``done`` gets its outputs or its error, exactly once, from HailoRT's thread.

        Returns once HailoRT has taken the frame: it first waits (up to the timeout) for room in
        HailoRT's queue. Frames complete in submission order on HailoRT, but callers should match
        results by the frame they submitted, not by arrival.
        """
        configured, bindings, buffers = self._bind(frame, own=True)
        with self._state:
            if self._closed:
                raise BackendError(
                    f"The Hailo session for {self._hef.name} is closed", "Load the model again."
                )
            self._in_flight += 1  # from here, close() waits for this frame
        try:
            configured.wait_for_async_ready(self._timeout_ms, 1)
        except BaseException as exc:
            self._finished()
            if not isinstance(exc, self._hailo.HailoRTException):
                raise
            if type(exc).__name__ == "HailoRTTimeout" or "HAILO_TIMEOUT" in _statuses(exc):
                raise BackendError(
                    f"HailoRT's queue for {self._hef.name} stayed full for {self._timeout_ms} ms",
                    "The device may be stuck or shared with a busy process: check dmesg | grep hailo, "
                    "or raise timeout_ms.",
                ) from exc
            raise hailort_error(exc, "queueing a frame for", self._hef) from exc

        def completed(completion_info: AsyncInferCompletionInfo) -> None:
            try:
                failure = completion_info.exception
                outcome: list[RawOutput] | BaseException = (
                    hailort_error(failure, "running", self._hef)
                    if failure is not None
                    else self._collect(buffers)
                )
            except BaseException as exc:  # e.g. a malformed NMS frame: this frame fails, not the thread
                outcome = exc
            try:
                done(outcome)
            except BaseException:  # an exception must not escape into HailoRT's callback thread
                LOG.exception("edgecv-hailo: a frame's completion handler failed")
            finally:
                self._finished()

        try:
            configured.run_async([bindings], completed)
        except BaseException as exc:
            self._finished()
            if isinstance(exc, self._hailo.HailoRTException):
                raise hailort_error(exc, "queueing a frame for", self._hef) from exc
            raise

    def _finished(self) -> None:
        with self._state:
            self._in_flight -= 1
            self._state.notify_all()

    # --- the device -------------------------------------------------------------------------------

    def _first_device(self) -> Device:
        """The VDevice's first physical device, kept for later queries (released by ``close``)."""
        with self._device_lock:
            if self._closed:
                raise BackendError("The Hailo session is closed", "Load the model again.")
            if self._device is None:
                self._device = first_physical_device(self._vdevice)
            return self._device

    def device(self) -> dict[str, Any]:
        """What the first physical device says of itself (keys HailoRT leaves empty are left out),
        e.g. ``{"device": "Hailo-8L", "architecture": "HAILO8L", "firmware": "4.20.0", ...}``;
        ``{"error": ...}`` when it cannot be asked."""
        described: dict[str, Any] = {}
        version = hailort_version(self._hailo)
        if version:
            described["hailort"] = version
        try:
            described.update(identify(self._first_device()))
        except Exception as exc:
            described["error"] = one_line(exc)
        return described

    def temperature(self) -> float | None:
        """The hotter of the chip's two sensors in °C; ``None`` when it cannot be read."""
        try:
            return chip_temperature(self._first_device())
        except Exception as exc:
            LOG.debug("Hailo chip temperature unreadable: %s", one_line(exc))
            return None

    # --- release ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Wait (up to the timeout) for frames in flight, then release the model and the device.

        Idempotent. Frames still in flight after the timeout are abandoned (their ``done`` may still
        be called with an error as HailoRT shuts the model down).
        """
        with self._state:
            if self._closed:
                return
            self._closed = True
            deadline = time.monotonic() + self._timeout_ms / 1000
            while self._in_flight > 0 and (left := deadline - time.monotonic()) > 0:
                self._state.wait(left)
            if self._in_flight > 0:
                LOG.warning(
                    "edgecv-hailo: closing %s with %d frames still in flight", self._hef.name, self._in_flight
                )
            configured, self._configured, self._model = self._configured, None, None
        with self._device_lock:
            device, self._device = self._device, None
        _release(device)
        _abandon(self._hailo, configured, self._vdevice)


# --- helpers -----------------------------------------------------------------------------------------


def _bind_input(hailo: HailoModule, model: InferModel, hef: Path) -> StreamInfo:
    names = list(model.input_names)
    if len(names) != 1:
        raise ModelError(
            f"{hef.name} has {len(names)} inputs ({', '.join(names)}); edgecv runs single-input detectors",
            "Compile the detector with one image input.",
        )
    stream = model.input(names[0])
    shape = tuple(int(d) for d in stream.shape)
    if len(shape) != 3 or shape[2] not in (1, 3):
        raise ModelError(
            f"{hef.name}: input {names[0]!r} has shape {list(shape)}, not an image (height, width, channels)",
            "Compile the detector with a (height, width, 3) image input.",
        )
    stream.set_format_type(hailo.FormatType.UINT8)
    return StreamInfo(names[0], shape, "uint8")


def _set_output_formats(
    hailo: HailoModule, model: InferModel, hef: Path, float_outputs: bool, asked_nms: dict[str, float | int]
) -> list[_Output]:
    """Choose each output's format (before ``configure``); the shapes are read after it."""
    outputs: list[_Output] = []
    for name in model.output_names:
        stream = model.output(name)
        if stream.is_nms:
            stream.set_format_type(hailo.FormatType.FLOAT32)
            if "nms_score_threshold" in asked_nms:
                stream.set_nms_score_threshold(float(asked_nms["nms_score_threshold"]))
            if "nms_iou_threshold" in asked_nms:
                stream.set_nms_iou_threshold(float(asked_nms["nms_iou_threshold"]))
            if "nms_max_proposals" in asked_nms:
                stream.set_nms_max_proposals_per_class(int(asked_nms["nms_max_proposals"]))
            outputs.append(_Output(StreamInfo(name, (), "float32", nms=True), ()))
            continue
        if float_outputs:
            stream.set_format_type(hailo.FormatType.FLOAT32)
        dtype = _dtype_name(hailo, stream.format.type)
        if dtype is None:
            raise ModelError(
                f"{hef.name}: output {name!r} has format type {stream.format.type}, not uint8/uint16/float32",
                "Compile the model again with the Dataflow Compiler.",
            )
        scale = zero_point = None
        if dtype != "float32":
            quant = stream.quant_infos[0]
            scale, zero_point = float(quant.qp_scale), float(quant.qp_zp)
        outputs.append(_Output(StreamInfo(name, (), dtype, scale, zero_point), ()))
    if not outputs:
        raise ModelError(f"{hef.name} has no outputs", "Compile the model again.")
    if asked_nms and not any(output.info.nms for output in outputs):
        raise ConfigError(
            f"{', '.join(asked_nms)} apply to HEFs compiled with NMS; {hef.name} has none",
            "Drop those options (this HEF's outputs are decoded by edgecv).",
        )
    return outputs


def _output_layout(hailo: HailoModule, model: InferModel, hef: Path, output: _Output) -> _Output:
    """``output`` with the shapes HailoRT reports once configured."""
    stream = model.output(output.info.name)
    shape = tuple(int(d) for d in stream.shape)
    if not output.info.nms:
        return _Output(attrs.evolve(output.info, shape=shape), shape)
    by_name = {info.name: info for info in model.hef.get_output_vstream_infos()}
    vstream = by_name.get(output.info.name)
    classes = int(vstream.nms_shape.number_of_classes) if vstream is not None else 0
    # HailoRT's frame: per class a count then up to max_boxes boxes of 5 floats.
    per_class = shape[0] // classes if classes and len(shape) == 1 else 0
    if per_class < 1 or (per_class - 1) % BOX_PARAMS or per_class * classes != shape[0]:
        raise ModelError(
            f"{hef.name}: NMS output {output.info.name!r} has a frame of {list(shape)} values for {classes} "
            "classes, which is not HailoRT's NMS-by-class layout",
            "Compile the model again with the Dataflow Compiler release that matches this HailoRT.",
        )
    max_boxes = (per_class - 1) // BOX_PARAMS
    return _Output(attrs.evolve(output.info, shape=(classes, max_boxes, BOX_PARAMS)), shape)


def _hef_source(hef: Path) -> str | bytes:
    """What ``create_infer_model`` takes for ``hef``: its path, or its bytes when the path is not
    valid UTF-8 (HailoRT's C++ binding cannot take a surrogate-escaped name)."""
    path = str(hef)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return hef.read_bytes()
        except OSError as exc:
            raise ModelError(f"Cannot read {hef}: {exc.strerror or exc}", "Check the file.") from exc
    return path


def _abandon(hailo: HailoModule, configured: ConfiguredInferModel | None, vdevice: VDevice | None) -> None:
    """Undo a half-done ``HailoRunner.open``: the configured model, then the device."""
    if configured is not None:
        try:
            configured.shutdown()
        except Exception as exc:
            LOG.debug("HailoRT shutdown failed: %s", one_line(exc))
    release_vdevice(hailo, vdevice)


def _release(handle: Any) -> None:
    """``handle.release()`` (a VDevice or Device), never raising: releasing is best effort."""
    if handle is None:
        return
    try:
        handle.release()
    except Exception as exc:
        LOG.debug("HailoRT release failed: %s", one_line(exc))


def _clean(text: object, limit: int = 64) -> str:
    """A device-reported string made printable: NULs and padding dropped, control characters out."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    cleaned = "".join(c for c in str(text).split("\x00", 1)[0] if c.isprintable()).strip()
    return "" if cleaned == "<N/A>" else cleaned[:limit]


def first_physical_device(vdevice: VDevice) -> Device:
    """The first device behind ``vdevice`` (the others are released); the caller releases it."""
    devices = vdevice.get_physical_devices()
    if not devices:
        raise BackendError("HailoRT lists no physical device", DEVICE_HINT)
    for extra in devices[1:]:
        _release(extra)
    return devices[0]


def _device_architecture(vdevice: VDevice) -> str | None:
    """The first physical device's architecture name (``"HAILO8L"``), or ``None``."""
    device: Device | None = None
    try:
        device = first_physical_device(vdevice)
        return _architecture_name(device.control.identify().device_architecture) or None
    except Exception:
        return None
    finally:
        _release(device)


def _architecture_name(architecture: object) -> str:
    name = getattr(architecture, "name", None)
    return _clean(name if isinstance(name, str) else architecture)


def identify(device: Device) -> dict[str, str]:
    """``control.identify()`` of ``device`` as edgecv's device record (empty fields left out)."""
    identity = device.control.identify()
    architecture = _architecture_name(identity.device_architecture)
    firmware = identity.firmware_version
    described = {
        "device": DEVICE_NAMES.get(architecture, architecture),
        "architecture": architecture,
        "firmware": f"{int(firmware.major)}.{int(firmware.minor)}.{int(firmware.revision)}",
        "board": _clean(identity.board_name),
        "serial": _clean(identity.serial_number),
    }
    return {key: value for key, value in described.items() if value}


def chip_temperature(device: Device) -> float | None:
    """The hotter of ``device``'s two on-die sensors (ts0, ts1) in °C, ``None`` if neither reads."""
    reading = device.control.get_chip_temperature()
    values = [float(reading.ts0_temperature), float(reading.ts1_temperature)]
    finite = [value for value in values if math.isfinite(value)]
    return max(finite) if finite else None

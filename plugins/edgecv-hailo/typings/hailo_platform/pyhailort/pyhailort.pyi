# Typed stubs for hailo_platform.pyhailort.pyhailort, HailoRT 4.21 (hailo8 branch), by hand from
# its pyhailort.py and the pybind11 sources it wraps. Only the names edgecv_hailo/runtime.py uses.

from collections.abc import Callable
from enum import IntEnum
from typing import Any

import numpy.typing as npt

class HailoRTException(Exception): ...

class HailoSchedulingAlgorithm:
    ROUND_ROBIN: HailoSchedulingAlgorithm

class FormatType:
    UINT8: FormatType
    UINT16: FormatType
    FLOAT32: FormatType

class HailoFormat:
    type: FormatType

class QuantInfo:
    qp_zp: float
    qp_scale: float

class NmsShape:
    number_of_classes: int
    max_bboxes_per_class: int

class VStreamInfo:
    name: str
    @property
    def nms_shape(self) -> NmsShape: ...

class HEF:
    def get_output_vstream_infos(self, name: str | None = None) -> list[VStreamInfo]: ...

class VDeviceParams:
    scheduling_algorithm: HailoSchedulingAlgorithm

class AsyncInferCompletionInfo:
    @property
    def exception(self) -> HailoRTException | None: ...

class AsyncInferJob:
    def wait(self, timeout_ms: int) -> None: ...

class InferModel:
    class InferStream:
        @property
        def name(self) -> str: ...
        @property
        def shape(self) -> list[int]: ...
        @property
        def format(self) -> HailoFormat: ...
        @property
        def quant_infos(self) -> list[QuantInfo]: ...
        @property
        def is_nms(self) -> bool: ...
        def set_format_type(self, type: FormatType) -> None: ...
        def set_nms_score_threshold(self, threshold: float) -> None: ...
        def set_nms_iou_threshold(self, threshold: float) -> None: ...
        def set_nms_max_proposals_per_class(self, max_proposals: int) -> None: ...

    @property
    def hef(self) -> HEF: ...
    @property
    def input_names(self) -> list[str]: ...
    @property
    def output_names(self) -> list[str]: ...
    def input(self, name: str = "") -> InferModel.InferStream: ...
    def output(self, name: str = "") -> InferModel.InferStream: ...
    def set_batch_size(self, batch_size: int) -> None: ...
    def configure(self) -> ConfiguredInferModel: ...

class ConfiguredInferModel:
    class Bindings:
        class InferStream:
            def set_buffer(self, buffer: npt.NDArray[Any]) -> None: ...

        def input(self, name: str = "") -> ConfiguredInferModel.Bindings.InferStream: ...

    def create_bindings(
        self,
        input_buffers: dict[str, npt.NDArray[Any]] | None = None,
        output_buffers: dict[str, npt.NDArray[Any]] | None = None,
    ) -> ConfiguredInferModel.Bindings: ...
    def wait_for_async_ready(self, timeout_ms: int = 1000, frames_count: int = 1) -> None: ...
    def run(self, bindings: list[ConfiguredInferModel.Bindings], timeout: int) -> None: ...
    # HailoRT calls ``callback(completion_info=AsyncInferCompletionInfo(...))`` from its own thread.
    def run_async(
        self,
        bindings: list[ConfiguredInferModel.Bindings],
        callback: Callable[..., object] | None = None,
    ) -> AsyncInferJob: ...
    def get_async_queue_size(self) -> int: ...
    def shutdown(self) -> None: ...

class DeviceArchitectureTypes(IntEnum):
    HAILO8_A0 = 0
    HAILO8 = 1
    HAILO8L = 2
    HAILO15H = 3
    HAILO15L = 4
    HAILO15M = 5
    HAILO10H = 6

class HailoFirmwareVersion:
    major: int
    minor: int
    revision: int

class BoardInformation:
    board_name: str
    firmware_version: HailoFirmwareVersion
    device_architecture: DeviceArchitectureTypes
    serial_number: str

class TemperatureInfo:
    @property
    def ts0_temperature(self) -> float: ...
    @property
    def ts1_temperature(self) -> float: ...

class Control:
    def identify(self) -> BoardInformation: ...
    def get_chip_temperature(self) -> TemperatureInfo: ...

class Device:
    @property
    def control(self) -> Control: ...
    def release(self) -> None: ...

class VDevice:
    def __init__(
        self, params: VDeviceParams | None = None, *, device_ids: list[str] | None = None
    ) -> None: ...
    @staticmethod
    def create_params() -> VDeviceParams: ...
    def create_infer_model(self, hef_source: str | bytes, name: str = "") -> InferModel: ...
    def get_physical_devices(self) -> list[Device]: ...
    def release(self) -> None: ...

# Typed stubs for the names edgecv-hailo uses of the Hailo Dataflow Compiler's Python API, hailo_sdk_client.
#
# Follows the Dataflow Compiler 3.x line (the compiler for Hailo-8 / Hailo-8L; 3.27 to 3.33), as its
# user guide's tutorials and public users call it (Hailo's hailo_model_zoo, Ultralytics' Hailo
# export): the DFC itself is distributed only through Hailo's Developer Zone, so these were written
# by hand, not generated. Only what edgecv_hailo/export.py calls is declared; keyword arguments the
# compiler has beyond these are left out on purpose.

from typing import Any

import numpy as np
import numpy.typing as npt

class ClientRunner:
    def __init__(self, hw_arch: str | None = None, har: str | None = None) -> None: ...
    def translate_onnx_model(
        self,
        model: str,
        net_name: str = "model",
        start_node_names: list[str] | None = None,
        end_node_names: list[str] | None = None,
        net_input_shapes: dict[str, list[int]] | None = None,
    ) -> tuple[Any, Any]:
        """Parse the ONNX into the Hailo network (HN); returns ``(hn, params)``."""
    def get_hn_dict(self) -> dict[str, Any]:
        """The HN as JSON: ``{"name": ..., "layers": {name: {"type", "input", "output",
        "output_shapes", "original_names", ...}}}``; ``original_names`` lists the ONNX nodes a
        layer was made from."""
    def load_model_script(self, model_script: str | None = None, append: bool = False) -> None:
        """A model script (``.alls``): a file path or the script's text."""
    def optimize(self, calib_data: npt.NDArray[np.uint8] | npt.NDArray[np.float32]) -> None:
        """Quantize with ``calib_data``: ``(N, H, W, C)`` images as the HEF's input takes them."""
    def compile(self) -> bytes:
        """The HEF's bytes (after ``optimize``)."""

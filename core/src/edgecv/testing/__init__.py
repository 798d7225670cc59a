"""The conformance kit: one pytest suite that every edgecv backend should pass.

A backend package runs it with a test file of three lines::

    from edgecv.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend = "opencv-dnn"

pytest collects ``TestMyBackend`` (``BackendConformance`` itself is not collected: its name does
not start with ``Test``). The suite loads the reference model ``yolov8n_fp32_dequant.onnx`` and
image ``bus.jpg`` from the assets folder (``edgecv.registry.assets_dir()``: ``EDGECV_ASSETS``, else
``../shared/assets`` from the working directory) and checks that:

- the backend is registered by an installed plugin (through the ``edgecv`` entry-point group)
  and available; an unavailable backend (runtime or hardware absent) skips the whole class with
  its availability reason, while a missing asset or an unregistered backend fails;
- the backend accepts the model file, and ``edgecv.load`` describes it: ``spec.backend``, input
  size, class names, arch ``yolov8``;
- raw outputs on the preprocessed ``bus.jpg`` match ONNX Runtime run directly on the reference
  model (skipped only when onnxruntime is not importable), within ``raw_atol``/``raw_rtol``;
- detections at conf 0.25 / iou 0.45 match the reference recorded in ``SOURCES.md`` (labels in
  score order, scores within ``score_tol``), and boxes are within ``box_tol_px`` of the ``onnx``
  backend's (skipped when edgecv-onnx is not installed);
- a truncated model file raises ``edgecv.errors.ModelError`` whose message is one line;
- repeated calls give identical detections, a list input gives a list of ``Detections``;
- ``model.infer(tensor)`` returns float32 arrays shaped as ``spec.outputs`` says.
- the session follows ``edgecv.backend.Session`` (``spec``, ``run``, ``bare``, ``close``): its bare
  call runs on the prepared tensor and leaves the session usable; ``close()`` may be called twice.

Class attributes (override in the subclass):

``backend``
    Required: the name the plugin registers.
``model``
    A model path or registry name; default ``None``, the reference ONNX model.
``load_options``
    Extra ``edgecv.load`` keyword arguments (backend options such as ``threads=1``).
``raw_atol``, ``raw_rtol``
    Raw-output tolerance, ``|backend - onnxruntime| <= raw_atol + raw_rtol * |onnxruntime|``
    (defaults 1e-2 and 1e-3: boxes are in input pixels, scores in 0..1). Loosen for FP16/INT8.
``score_tol``, ``box_tol_px``
    Detection score tolerance (0.01) and box coordinate tolerance in image pixels (2.0).
``expected_detections``, ``expected_imgsz``, ``expected_names``, ``expected_arch``
    What the model should give: the reference values by default.

Hooks (override for a backend whose format is not ONNX):

``prepare_model(self, reference, tmp_path_factory) -> Path``
    Convert the reference ONNX model into the backend's format once per class and return it.
``write_corrupt_model(self, model, directory) -> Path``
    Write a broken copy with the right name and layout (default: every file cut in half).
``reference_tensor(self, tensor, spec)`` / ``reference_outputs(self, outputs, spec)``
    Map the backend's input tensor and raw outputs to the reference model's NCHW float32 input
    and ``[1, 84, 8400]`` pixel-unit output (defaults undo quantization, NHWC, BGR, pixel scale,
    and normalized YOLOv8 boxes).

A converted or quantized model usually scores differently from the reference: set
``expected_detections`` to what the backend should give (and say where those numbers come from).

Importing this package imports pytest, so only tests import it; ``import edgecv`` never does.
``onnxruntime`` (the raw-output reference) is imported only inside the test that needs it.
"""

from __future__ import annotations

from edgecv.testing.conformance import BackendConformance
from edgecv.testing.reference import (
    REFERENCE_CONF,
    REFERENCE_DETECTIONS,
    REFERENCE_IMAGE,
    REFERENCE_IMGSZ,
    REFERENCE_IOU,
    REFERENCE_MODEL,
    MissingAssetError,
    reference_image,
    reference_model,
)

__all__ = [
    "REFERENCE_CONF",
    "REFERENCE_DETECTIONS",
    "REFERENCE_IMAGE",
    "REFERENCE_IMGSZ",
    "REFERENCE_IOU",
    "REFERENCE_MODEL",
    "BackendConformance",
    "MissingAssetError",
    "reference_image",
    "reference_model",
]

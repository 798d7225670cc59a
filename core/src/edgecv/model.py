"""``Model``: a loaded model that runs the pipeline, and ``load`` which builds one.

Timing is taken here and only here, so ``predict``, ``val`` and ``bench`` report the same stages.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import attrs
import numpy as np
import numpy.typing as npt
import pluggy

from edgecv import plugins
from edgecv.backends import BackendInfo, select_backend
from edgecv.decoders import choose_decoder
from edgecv.detections import Detections, StageTimings
from edgecv.errors import BackendError, ModelError
from edgecv.images import ImageLike, as_bgr, read_image
from edgecv.postprocess import PostprocessOptions
from edgecv.preprocess import LetterboxInfo
from edgecv.spec import (
    InputSpec,
    LoadedModel,
    ModelSpec,
    Quantization,
    default_names,
    infer_layout,
    load_names,
    names_from_metadata,
    resolve_input_size,
)


class Model:
    """A model bound to a backend. Call it on an image path, a BGR array, or a list of them."""

    def __init__(
        self,
        spec: ModelSpec,
        session: Any,
        manager: pluggy.PluginManager,
        options: PostprocessOptions | None = None,
        load_ms: float = 0.0,
    ) -> None:
        self.spec = spec
        self.session = session
        self.options = options or PostprocessOptions()
        self.load_ms = load_ms
        self.last_timings = StageTimings()
        self._hook = manager.hook

    @property
    def backend(self) -> str:
        return self.spec.backend

    @property
    def names(self) -> tuple[str, ...]:
        return self.spec.names

    @overload
    def __call__(self, source: ImageLike, **overrides: Any) -> Detections: ...

    @overload
    def __call__(
        self, source: list[ImageLike] | tuple[ImageLike, ...], **overrides: Any
    ) -> list[Detections]: ...

    def __call__(
        self, source: ImageLike | list[ImageLike] | tuple[ImageLike, ...], **overrides: Any
    ) -> Detections | list[Detections]:
        """Detect objects. ``overrides`` change ``PostprocessOptions`` (conf, iou, ...) for this call."""
        options = attrs.evolve(self.options, **overrides) if overrides else self.options
        if isinstance(source, (list, tuple)):
            return [self._one(item, options) for item in source]
        return self._one(source, options)

    def _one(self, source: ImageLike, options: PostprocessOptions) -> Detections:
        if isinstance(source, (str, os.PathLike)):
            return self.predict(read_image(source), options, source=str(source))
        return self.predict(as_bgr(source), options)

    def predict(
        self,
        image: npt.NDArray[np.uint8],
        options: PostprocessOptions | None = None,
        source: str | None = None,
    ) -> Detections:
        """The pipeline on one decoded BGR frame, with per-stage timings."""
        start = time.perf_counter()
        tensor, letterbox = self.preprocess(image)
        preprocessed = time.perf_counter()
        outputs = self.infer(tensor)
        inferred = time.perf_counter()
        detections = self.postprocess(outputs, letterbox, options or self.options)
        done = time.perf_counter()
        timings = StageTimings(
            (preprocessed - start) * 1e3, (inferred - preprocessed) * 1e3, (done - inferred) * 1e3
        )
        self.last_timings = timings
        detections = attrs.evolve(detections, source=source, timings=timings)
        self._hook.edgecv_on_detections(model=self, image=image, detections=detections)
        return detections

    def preprocess(self, image: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[Any], LetterboxInfo]:
        result = self._hook.edgecv_preprocess(image=image, spec=self.spec)
        if result is None:
            raise BackendError("No plugin preprocessed the frame", "Check the installed plugins.")
        return result  # type: ignore[no-any-return]

    def infer(self, tensor: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        """Run the backend on a prepared tensor through its plugin (``bare_infer`` skips edgecv entirely)."""
        outputs = self._hook.edgecv_infer(spec=self.spec, session=self.session, tensor=tensor)
        if outputs is None:
            raise BackendError(
                f"No installed plugin runs backend {self.spec.backend!r}",
                "The plugin that loaded this model was unregistered or disabled.",
            )
        return outputs  # type: ignore[no-any-return]

    def bare_infer(self) -> Callable[[npt.NDArray[Any]], object]:
        """The runtime's own call for this model, without edgecv (for overhead measurements)."""
        runner = self._hook.edgecv_bare_infer(spec=self.spec, session=self.session)
        if runner is None:
            raise BackendError(
                f"Backend {self.spec.backend!r} does not expose its bare runtime call",
                "Its plugin should implement edgecv_bare_infer.",
            )
        return runner  # type: ignore[no-any-return]

    def postprocess(
        self, outputs: Sequence[npt.NDArray[Any]], letterbox: LetterboxInfo, options: PostprocessOptions
    ) -> Detections:
        detections = self._hook.edgecv_postprocess(
            outputs=outputs, spec=self.spec, letterbox=letterbox, options=options
        )
        if detections is None:
            raise BackendError("No plugin postprocessed the frame", "Check the installed plugins.")
        return detections  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        size = "x".join(map(str, self.spec.input.size))
        return (
            f"Model({self.spec.path.name!r}, backend={self.backend!r}, arch={self.spec.arch!r}, imgsz={size})"
        )


def build_spec(
    path: Path,
    backend: str,
    loaded: LoadedModel,
    *,
    arch: str | None = None,
    imgsz: int | Sequence[int] | None = None,
    names: Sequence[str] | str | os.PathLike[str] | None = None,
) -> ModelSpec:
    """Combine what the file declares with the user's overrides; decide everything once."""
    metadata: Mapping[str, str] = loaded.metadata
    tensor = loaded.input
    layout = loaded.layout or infer_layout(tensor.shape)
    size = resolve_input_size(tensor.shape, layout, metadata, imgsz)
    class_names = load_names(names) if names is not None else names_from_metadata(metadata)
    shapes = [o.shape for o in loaded.outputs]
    decoder = choose_decoder(shapes, len(class_names) if class_names else None, size, metadata, arch)
    if class_names is None:
        class_names = default_names(_class_count(decoder.name, shapes))
    recipe = dict(decoder.preprocessing)
    quantization = tensor.quantization
    if quantization is None and tensor.dtype in ("uint8", "int8"):
        # An integer input without declared quantization takes pixel values as they are
        # (int8: shifted by -128), not the float recipe's 0..1 scaling.
        recipe["scale"] = 1.0
        quantization = Quantization(scale=1.0, zero_point=0 if tensor.dtype == "uint8" else -128)
    input_spec = InputSpec(
        name=tensor.name,
        shape=tensor.shape,
        layout=layout,
        dtype=tensor.dtype,
        size=size,
        quantization=quantization,
        **recipe,
    )
    return ModelSpec(
        path=path,
        backend=backend,
        input=input_spec,
        outputs=loaded.outputs,
        names=class_names,
        arch=decoder.name,
        task=str(metadata.get("task", "detect")),
        boxes_normalized=bool(loaded.boxes_normalized),
        metadata=dict(metadata),
    )


def _class_count(arch: str, shapes: Sequence[tuple[int | None, ...]]) -> int:
    shape = shapes[0]
    if arch == "yolov8":
        channels = min(d for d in shape[1:] if d is not None)
        return channels - 4
    if arch in ("yolov5", "yolox") and shape[2] is not None:
        return shape[2] - 5
    return 80


def load(
    model: str | os.PathLike[str],
    backend: str = "auto",
    *,
    arch: str | None = None,
    imgsz: int | Sequence[int] | None = None,
    names: Sequence[str] | str | os.PathLike[str] | None = None,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    **options: Any,
) -> Model:
    """Load a model file, folder, or registry name (``"yolov8n"``) on a backend.

    ``backend="auto"`` picks the highest-priority available backend that reads the file.
    ``arch`` forces a decoder (``"yolox"``); ``imgsz`` sets the input size of dynamic models;
    ``names`` overrides class names (a list or a text file). Other keyword arguments are backend
    options (e.g. ``threads=2``, ``providers=[...]`` for ONNX Runtime).
    """
    from edgecv import registry

    start = time.perf_counter()
    path = registry.resolve(model)
    state = plugins.state()
    info: BackendInfo = select_backend(state.backends, backend, path)
    loaded = state.manager.hook.edgecv_load(backend=info.name, path=path, options=dict(options))
    if loaded is None:
        raise ModelError(
            f"Backend {info.name!r} did not load {path}",
            f"Its plugin ({info.plugin}) declares the backend but does not implement edgecv_load for it.",
        )
    spec = build_spec(path, info.name, loaded, arch=arch, imgsz=imgsz, names=names)
    post = PostprocessOptions(
        conf=conf, iou=iou, max_det=max_det, classes=tuple(classes) if classes else None
    )
    result = Model(spec, loaded.session, state.manager, post, load_ms=(time.perf_counter() - start) * 1e3)
    state.manager.hook.edgecv_on_model_loaded(model=result)
    return result

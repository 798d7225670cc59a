"""``Model``: a loaded model that runs the pipeline, and ``load`` which builds one.

Timing is taken here and only here, so ``predict``, ``val`` and ``bench`` report the same stages.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, overload

import attrs
import numpy as np
import numpy.typing as npt
import pluggy

from edgecv import plugins, validation
from edgecv.backends import AsyncSession, Backend, Outputs, Session, select_backend
from edgecv.decoders import choose_decoder
from edgecv.decoders.base import Decoder
from edgecv.detections import Detections, StageTimings
from edgecv.errors import BackendError, ModelError
from edgecv.images import ImageLike, as_bgr, read_image_reduced
from edgecv.postprocess import PostprocessOptions
from edgecv.preprocess import Lease, LetterboxInfo, TensorBuffers
from edgecv.spec import (
    InputSpec,
    ModelSpec,
    Quantization,
    SessionSpec,
    default_names,
    infer_layout,
    load_names,
    names_from_metadata,
    recipe_from_metadata,
    resolve_input_size,
)

OPTION_NAMES = tuple(field.name for field in attrs.fields(PostprocessOptions))
"""The keywords a ``Model`` call takes."""


class Model:
    """A model bound to a backend. Call it on an image path, a BGR array, or a list of them.

    ``close()`` (or ``with``) releases the backend's session.
    """

    def __init__(
        self,
        spec: ModelSpec,
        session: Session,
        manager: pluggy.PluginManager,
        options: PostprocessOptions | None = None,
        load_ms: float = 0.0,
    ) -> None:
        self.spec = spec
        self.session = session
        self.options = self._checked(options or PostprocessOptions())
        self.load_ms = load_ms
        self.last_timings = StageTimings()
        self._hook = manager.hook
        self._buffers = TensorBuffers(spec.input)

    @property
    def backend(self) -> str:
        return self.spec.backend

    @property
    def names(self) -> tuple[str, ...]:
        return self.spec.names

    @property
    def asynchronous(self) -> bool:
        """Whether ``submit`` keeps frames in flight: the session is an ``AsyncSession`` and no plugin
        intercepts ``edgecv_infer`` (only the synchronous path calls it)."""
        return isinstance(self.session, AsyncSession) and len(self._hook.edgecv_infer.get_hookimpls()) == 1

    @overload
    def __call__(self, source: ImageLike, **overrides: Any) -> Detections: ...

    @overload
    def __call__(
        self, source: list[ImageLike] | tuple[ImageLike, ...], **overrides: Any
    ) -> list[Detections]: ...

    def __call__(
        self, source: ImageLike | list[ImageLike] | tuple[ImageLike, ...], **overrides: Any
    ) -> Detections | list[Detections]:
        """Detect objects. ``overrides`` change ``PostprocessOptions`` (conf, iou, ...) for this call;
        an unknown or out-of-range one is a ``ConfigError``."""
        options = self.options
        if overrides:
            validation.check_options(overrides, OPTION_NAMES, "model()")
            options = self._checked(attrs.evolve(self.options, **overrides))
        if isinstance(source, (list, tuple)):
            return [self._one(item, options) for item in source]
        return self._one(source, options)

    def _checked(self, options: PostprocessOptions) -> PostprocessOptions:
        """``options``, once its class ids are known to be this model's."""
        validation.class_ids(options.classes, len(self.spec.names))
        return options

    def _one(self, source: ImageLike, options: PostprocessOptions) -> Detections:
        if isinstance(source, (str, os.PathLike)):
            # A huge JPEG decodes reduced (bounded memory); boxes come back in the file's pixels.
            read = read_image_reduced(source)
            return read.restore(self.predict(read.image, options, source=str(source)))
        return self.predict(as_bgr(source), options)

    def predict(
        self,
        image: npt.NDArray[np.uint8],
        options: PostprocessOptions | None = None,
        source: str | None = None,
    ) -> Detections:
        """The pipeline on one decoded BGR frame, with per-stage timings."""
        start = time.perf_counter()
        tensor, letterbox, lease = self.preprocess_leased(image)
        preprocessed = time.perf_counter()
        try:
            outputs = self.infer(tensor)
        finally:
            lease.release()  # the runtime has returned: the tensor's buffer can take the next frame
        return self.finish(image, outputs, letterbox, options, source, start, preprocessed)

    def submit(
        self,
        image: npt.NDArray[np.uint8],
        options: PostprocessOptions | None = None,
        source: str | None = None,
    ) -> Future[Detections]:
        """Start the pipeline on one frame; the future resolves to what ``predict`` would return.

        With an ``AsyncSession`` (an accelerator with frames in flight) this returns once the
        frame is preprocessed and queued, so several frames can be in flight; the outputs are
        decoded in the session's completion thread. Otherwise, or when a plugin intercepts
        ``edgecv_infer`` (which only the synchronous path calls), the frame runs now and the
        future is already done.
        """
        session = self.session
        if not (self.asynchronous and isinstance(session, AsyncSession)):
            finished: Future[Detections] = Future()
            try:
                finished.set_result(self.predict(image, options, source))
            except Exception as exc:
                finished.set_exception(exc)
            return finished
        start = time.perf_counter()
        tensor, letterbox, lease = self.preprocess_leased(image)
        preprocessed = time.perf_counter()
        result: Future[Detections] = Future()

        def decode(outputs: Future[Outputs]) -> None:
            lease.release()  # the session is done with the tensor (or failed the frame)
            try:
                result.set_result(
                    self.finish(image, outputs.result(), letterbox, options, source, start, preprocessed)
                )
            except Exception as exc:
                result.set_exception(exc)

        try:
            queued = session.submit(tensor)
        except BaseException:
            lease.release()
            raise
        queued.add_done_callback(decode)
        return result

    def finish(
        self,
        image: npt.NDArray[np.uint8],
        outputs: Outputs,
        letterbox: LetterboxInfo,
        options: PostprocessOptions | None,
        source: str | None,
        start: float,
        preprocessed: float,
    ) -> Detections:
        """Postprocess a frame the session ran into what ``predict`` returns: detections with the
        stage timings (``start`` and ``preprocessed`` are ``time.perf_counter()`` readings; the
        infer stage runs from ``preprocessed`` to now), reported to ``edgecv_on_detections``."""
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

    def lease(self) -> Lease:
        """A lease on this model's reused input buffers, for ``preprocess(image, lease)``."""
        return self._buffers.lease()

    def preprocess(
        self, image: npt.NDArray[np.uint8], lease: Lease | None = None
    ) -> tuple[npt.NDArray[Any], LetterboxInfo]:
        """The frame as the model's input tensor, through ``edgecv_preprocess``.

        Without ``lease``: a fresh array the caller owns. With one (``Model.lease()``): a buffer
        reused from an earlier frame, no allocation; it stays this frame's until
        ``lease.release()``, which the caller calls once the runtime is done reading the tensor
        (``predict`` and ``submit`` do this).
        """
        if lease is None:
            return self._preprocess(image)
        with lease.active():
            return self._preprocess(image)

    def preprocess_leased(
        self, image: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[Any], LetterboxInfo, Lease]:
        """``preprocess`` into a reused buffer, with its lease: the caller releases it once the
        runtime is done reading the tensor (on a failure here it is already released)."""
        lease = self.lease()
        try:
            tensor, letterbox = self.preprocess(image, lease)
        except BaseException:
            lease.release()
            raise
        return tensor, letterbox, lease

    def _preprocess(self, image: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[Any], LetterboxInfo]:
        result: tuple[npt.NDArray[Any], LetterboxInfo] | None = self._hook.edgecv_preprocess(
            image=image, spec=self.spec
        )
        if result is None:
            raise BackendError("No plugin preprocessed the frame", "Check the installed plugins.")
        return result

    def infer(self, tensor: npt.NDArray[Any]) -> Outputs:
        """Run the session on a prepared tensor through ``edgecv_infer`` (``bare_infer`` skips edgecv).

        The tensor ``predict`` passes is a reused buffer: a plugin wrapping ``edgecv_infer`` that
        keeps it past the call must keep a copy.
        """
        outputs: Outputs | None = self._hook.edgecv_infer(spec=self.spec, session=self.session, tensor=tensor)
        if outputs is None:
            raise BackendError("No plugin ran inference on the frame", "Check the installed plugins.")
        return outputs

    def bare_infer(self) -> Callable[[npt.NDArray[Any]], object]:
        """The runtime's own call for this model, without edgecv (for overhead measurements)."""
        return self.session.bare

    def postprocess(
        self, outputs: Sequence[npt.NDArray[Any]], letterbox: LetterboxInfo, options: PostprocessOptions
    ) -> Detections:
        detections: Detections | None = self._hook.edgecv_postprocess(
            outputs=outputs, spec=self.spec, letterbox=letterbox, options=options
        )
        if detections is None:
            raise BackendError("No plugin postprocessed the frame", "Check the installed plugins.")
        return detections

    def close(self) -> None:
        """Release the backend's session; the model cannot run afterwards."""
        self.session.close()
        self._buffers.clear()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        size = "x".join(map(str, self.spec.input.size))
        return (
            f"Model({self.spec.path.name!r}, backend={self.backend!r}, arch={self.spec.arch!r}, imgsz={size})"
        )


def build_spec(
    path: Path,
    backend: str,
    loaded: SessionSpec,
    *,
    arch: str | None = None,
    imgsz: int | Sequence[int] | None = None,
    names: Sequence[str] | str | os.PathLike[str] | None = None,
    decoders: Sequence[Decoder] | None = None,
) -> ModelSpec:
    """Combine what the file declares with the user's overrides; decide everything once.

    ``decoders`` are tried in order (default: every registered one, plugins' first).
    """
    metadata: Mapping[str, str] = loaded.metadata
    tensor = loaded.input
    layout = loaded.layout or infer_layout(tensor.shape)
    size = resolve_input_size(tensor.shape, layout, metadata, imgsz)
    class_names = load_names(names) if names is not None else names_from_metadata(metadata)
    shapes = [o.shape for o in loaded.outputs]
    decoder = choose_decoder(
        shapes,
        len(class_names) if class_names else None,
        size,
        metadata,
        arch,
        plugins.decoders() if decoders is None else decoders,
    )
    if class_names is None:
        count = decoder.class_count(shapes)
        if count is None:
            raise ModelError(
                f"{path.name} carries no class names and its {decoder.name} outputs "
                "do not tell the class count",
                "Pass the names (--names FILE with one name per line, names= in Python).",
            )
        class_names = default_names(count)
    recipe = {**decoder.preprocessing, **recipe_from_metadata(metadata)}
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
        decoder=decoder,
        task=str(metadata.get("task", "detect")),
        boxes_normalized=bool(loaded.boxes_normalized),
        metadata=dict(metadata),
    )


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
    # Checked before anything is downloaded or opened; the class ids once the names are known.
    post = PostprocessOptions(conf=conf, iou=iou, max_det=max_det, classes=classes)
    path = registry.resolve(model)
    manager = plugins.plugin_manager()
    chosen: Backend = select_backend(plugins.backends(), backend, path)
    validation.positive_int(options, "threads", chosen.name)  # the one option every CLI command passes
    session: Session | None = manager.hook.edgecv_load(backend=chosen, path=path, options=dict(options))
    if session is None:
        raise ModelError(f"Backend {chosen.name!r} did not open {path}", "Check the installed plugins.")
    try:
        spec = build_spec(path, chosen.name, session.spec, arch=arch, imgsz=imgsz, names=names)
        result = Model(spec, session, manager, post, load_ms=(time.perf_counter() - start) * 1e3)
    except BaseException:
        session.close()
        raise
    manager.hook.edgecv_on_model_loaded(model=result)
    return result

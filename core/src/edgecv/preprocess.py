"""Image -> input tensor: letterbox, colour order, scaling, layout, quantization.

One resize into a padded canvas, then one lookup-table pass per channel (float or quantized
values) over the rows that hold the image; no per-pixel Python. The tensor and its scratch arrays
live in a ``_Slot``. ``Model.predict`` and ``Model.submit`` lend one per frame from the model's
``TensorBuffers`` (``Model.lease()``), so in steady state a frame allocates nothing and the padding
is only rewritten when the image's placement changes. Without a lease (``preprocess`` called
directly, ``Model.preprocess(image)``) every call gets fresh arrays that nothing else will write.
A uint8 NHWC BGR input (``edgecv export --to onnx --option uint8_input=true``) is the resize alone,
straight into the tensor.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import attrs
import cv2
import numpy as np
import numpy.typing as npt

from edgecv.images import Image
from edgecv.spec import InputSpec, LetterboxMode

FREE_BUFFERS_KEPT = 64
"""Idle buffers a ``TensorBuffers`` keeps for reuse (the most frames the core keeps in flight by
default); a buffer released beyond that is left to the garbage collector."""


@attrs.frozen
class LetterboxInfo:
    """How an image was placed into the model input: ``input = image * gain + (pad_x, pad_y)``."""

    gain: float
    pad: tuple[int, int]
    """(left, top) padding in input pixels."""
    image_shape: tuple[int, int]
    """(height, width) of the original image."""
    input_shape: tuple[int, int]
    """(height, width) of the model input."""


@attrs.frozen
class _Placement:
    gain: float
    width: int
    height: int
    left: int
    top: int


def _place(image_shape: tuple[int, ...], size: tuple[int, int], mode: LetterboxMode) -> _Placement:
    """Where the resized image goes in the input. ``center`` follows Ultralytics' LetterBox (rounded
    size, padding split around the image); ``topleft`` follows YOLOX (truncated size, padding at
    bottom/right)."""
    height, width = image_shape[:2]
    target_h, target_w = size
    gain = min(target_h / height, target_w / width)
    if mode == "center":
        new_w, new_h = round(width * gain), round(height * gain)
        left, top = round((target_w - new_w) / 2 - 0.1), round((target_h - new_h) / 2 - 0.1)
        return _Placement(gain, new_w, new_h, left, top)
    return _Placement(gain, int(width * gain), int(height * gain), 0, 0)


def _info(placement: _Placement, image: npt.NDArray[np.uint8], size: tuple[int, int]) -> LetterboxInfo:
    height, width = image.shape[:2]
    return LetterboxInfo(placement.gain, (placement.left, placement.top), (height, width), size)


def letterbox(
    image: npt.NDArray[np.uint8],
    size: tuple[int, int],
    mode: LetterboxMode = "center",
    pad_value: int = 114,
) -> tuple[npt.NDArray[np.uint8], LetterboxInfo]:
    """Resize ``image`` to fit ``size`` (h, w) keeping its aspect ratio, then pad (see ``_place``).

    Returns the image itself when it already has the input size.
    """
    placement = _place(image.shape, size, mode)
    resized = image
    if (placement.width, placement.height) != image.shape[1::-1]:
        new_size = (placement.width, placement.height)
        resized = cast(Image, cv2.resize(image, new_size, interpolation=cv2.INTER_LINEAR))
    target_h, target_w = size
    right = target_w - placement.width - placement.left
    bottom = target_h - placement.height - placement.top
    if placement.left or placement.top or right or bottom:
        border = cv2.BORDER_CONSTANT
        resized = cast(
            Image,
            cv2.copyMakeBorder(
                resized, placement.top, bottom, placement.left, right, border, value=(pad_value,) * 3
            ),
        )
    return resized, _info(placement, image, size)


class _Plan:
    """The views ``_Slot.fill`` writes through for one image size (see ``_Slot._make_plan``)."""

    def __init__(self, image: npt.NDArray[np.uint8], placement: _Placement, info: LetterboxInfo) -> None:
        self.image_shape: tuple[int, ...] = image.shape[:2]
        self.size = (placement.width, placement.height)
        self.resize = self.size != image.shape[1::-1]
        self.info = info
        self.resized: npt.NDArray[Any] = image[:0]
        self.band: npt.NDArray[np.uint8] | None = None
        self.planes: list[npt.NDArray[np.uint8]] = []
        self.conversions: list[tuple[npt.NDArray[np.uint8], npt.NDArray[Any]]] = []
        self.colour: npt.NDArray[Any] | None = None
        self.target: npt.NDArray[Any] | None = None


class _Slot:
    """One frame's tensor for ``spec`` and the scratch arrays that fill it, allocated once.

    The image is resized into a letterbox canvas whose padding is already there; only the band of
    rows that holds the image is then converted into the tensor (full rows: contiguous writes),
    whose padding rows were written once. Both paddings are rewritten when the placement changes
    (a new image size), so a video's frames cost one resize and one conversion of the band.
    """

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        height, width = spec.size
        self.quantized = spec.quantization is not None
        self.table = _quantization_table(spec) if self.quantized else _scale_table(spec.scale)
        dtype = np.dtype(spec.dtype) if self.quantized else np.dtype(np.float32)
        shape = (1, 3, height, width) if spec.layout == "NCHW" else (1, height, width, 3)
        self.tensor: npt.NDArray[Any] = np.empty(shape, dtype)
        self.swap = spec.color == "RGB"
        # The resize goes straight into the tensor when the tensor holds plain BGR pixels (a uint8
        # NHWC input with the cast and scaling in the graph).
        self.direct = spec.layout == "NHWC" and self.table is None and not self.swap
        pixels = 0 if self.direct else height * width * 3
        self._canvas = np.empty(pixels, np.uint8).reshape(-1, width, 3)
        # Flat scratch memory, viewed at each band's size: every view is contiguous.
        converted = self.swap and spec.layout == "NHWC" and self.table is not None
        self._colour = np.empty(pixels if converted else 0, np.uint8)
        self._planes = np.empty(pixels if spec.layout == "NCHW" else 0, np.uint8)
        self._plan: _Plan | None = None

    def fill(self, image: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[Any], LetterboxInfo]:
        plan = self._plan
        if plan is None or plan.image_shape != image.shape[:2]:
            plan = self._plan = self._make_plan(image)
        if plan.resize:
            cv2.resize(image, plan.size, dst=plan.resized, interpolation=cv2.INTER_LINEAR)
        else:
            np.copyto(plan.resized, image)
        if plan.band is None:
            pass  # the resize wrote the tensor itself
        elif plan.planes:  # NCHW: one plane per channel, each converted into its rows of the tensor
            cv2.split(plan.band, plan.planes)
            for plane, target in plan.conversions:
                self._convert(plane, target)
        else:  # NHWC through the canvas
            band = plan.band
            if plan.colour is not None:
                band = cast(Image, cv2.cvtColor(band, cv2.COLOR_BGR2RGB, dst=plan.colour))
            if plan.target is not None:
                self._convert(band, plan.target)
        tensor = self.tensor if self.tensor.dtype == self.spec.dtype else self.tensor.astype(self.spec.dtype)
        return tensor, plan.info

    def _make_plan(self, image: npt.NDArray[np.uint8]) -> _Plan:
        """Where each step of ``fill`` writes for images of this size (views, made once per size),
        after writing the padding around the new placement."""
        spec = self.spec
        placement = _place(image.shape, spec.size, spec.letterbox)
        self._pad(placement)
        rows = slice(placement.top, placement.top + placement.height)
        cols = slice(placement.left, placement.left + placement.width)
        plan = _Plan(image, placement, _info(placement, image, spec.size))
        if self.direct:  # the resize writes the tensor: nothing else to do
            plan.resized = self.tensor[0, rows, cols]
            return plan
        plan.resized = self._canvas[rows, cols]
        band = plan.band = self._canvas[rows]
        if spec.layout == "NCHW":
            plan.planes = [_view(self._planes, band.shape[:2], index) for index in range(3)]
            sources = plan.planes[::-1] if self.swap else plan.planes
            plan.conversions = [(plane, self.tensor[0, index, rows]) for index, plane in enumerate(sources)]
        elif self.swap and self.table is None:  # RGB pixels as they are (Hailo): the swap fills the tensor
            plan.colour = self.tensor[0, rows]
        else:
            plan.colour = _view(self._colour, band.shape) if self.swap else None
            plan.target = self.tensor[0, rows]
        return plan

    def _convert(self, pixels: npt.NDArray[np.uint8], out: npt.NDArray[Any]) -> None:
        if self.table is None:
            np.copyto(out, pixels)
        else:
            cv2.LUT(pixels, self.table, dst=out)

    def _pad(self, placement: _Placement) -> None:
        """The padding value around the new placement, written once per placement: the tensor's
        rows above and below the image, and the columns beside it in the canvas (the band the
        conversion reads) or, in the direct case, in the tensor."""
        pad_value = self.spec.pad_value
        pad = pad_value if self.table is None else self.table[0, pad_value]
        top, left = placement.top, placement.left
        bottom, right = top + placement.height, left + placement.width
        image = self.tensor[0] if self.spec.layout == "NHWC" else self.tensor[0].transpose(1, 2, 0)
        image[:top] = pad
        image[bottom:] = pad
        beside, value = (image, pad) if self.direct else (self._canvas, pad_value)
        beside[top:bottom, :left] = value
        beside[top:bottom, right:] = value


def _view(memory: npt.NDArray[np.uint8], shape: tuple[int, ...], index: int = 0) -> npt.NDArray[np.uint8]:
    """The ``index``-th contiguous array of ``shape`` in the flat ``memory``."""
    count = int(np.prod(shape))
    return memory[index * count : (index + 1) * count].reshape(shape)


class TensorBuffers:
    """Input tensors for one model input, reused from frame to frame (``Model`` owns one).

    A buffer is lent to one frame, from preprocessing until the runtime is done with the tensor
    (``Lease.release``), and only then handed to another frame: frames in flight (an accelerator's
    queue, a pipelined run) never share one, however many there are. Thread-safe.
    """

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self._free: list[_Slot] = []
        self._lock = threading.Lock()

    def lease(self) -> Lease:
        return Lease(self)

    def _take(self) -> _Slot:
        with self._lock:
            if self._free:
                return self._free.pop()
        return _Slot(self.spec)

    def _give_back(self, slots: list[_Slot]) -> None:
        with self._lock:
            room = FREE_BUFFERS_KEPT - len(self._free)
            self._free.extend(slots[: max(room, 0)])

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


class Lease:
    """The buffers one frame's preprocessing took; ``release`` (once the tensor is no longer read)
    returns them for reuse. ``active()`` makes ``preprocess`` draw from it in this thread."""

    def __init__(self, buffers: TensorBuffers) -> None:
        self._buffers = buffers
        self._slots: list[_Slot] = []

    def slot(self, spec: InputSpec) -> _Slot | None:
        if spec is not self._buffers.spec and spec != self._buffers.spec:
            return None  # a plugin preprocessing for another input: fresh arrays
        slot = self._buffers._take()
        self._slots.append(slot)
        return slot

    @contextmanager
    def active(self) -> Iterator[None]:
        token = _LEASE.set(self)
        try:
            yield
        finally:
            _LEASE.reset(token)

    def release(self) -> None:
        slots, self._slots = self._slots, []
        if slots:
            self._buffers._give_back(slots)


_LEASE: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("edgecv_preprocess_lease", default=None)


@functools.lru_cache(maxsize=8)
def _scale_table(scale: float) -> npt.NDArray[np.float32]:
    """Pixel value (0..255) -> float input value, for ``cv2.LUT``."""
    table: npt.NDArray[np.float32] = (np.arange(256, dtype=np.float32) * np.float32(scale)).reshape(1, 256)
    return table


@functools.lru_cache(maxsize=8)
def _quantization_table(spec: InputSpec) -> npt.NDArray[Any] | None:
    """Pixel value (0..255) -> quantized input value, for ``cv2.LUT`` (built once per input spec);
    ``None`` when the input takes pixels as they are (uint8, scale 1, zero point 0: Hailo, uint8
    TFLite), which then costs no pass at all."""
    assert spec.quantization is not None
    info = np.iinfo(np.dtype(spec.dtype))
    scale = float(np.asarray(spec.quantization.scale, dtype=np.float64).reshape(-1)[0])
    zero_point = float(np.asarray(spec.quantization.zero_point).reshape(-1)[0])
    real = np.arange(256, dtype=np.float64) * spec.scale
    table = np.clip(np.rint(real / scale) + zero_point, info.min, info.max).astype(spec.dtype)
    identity = table.dtype == np.uint8 and np.array_equal(table, np.arange(256))
    return None if identity else table.reshape(1, 256)


def preprocess(image: npt.NDArray[np.uint8], spec: InputSpec) -> tuple[npt.NDArray[Any], LetterboxInfo]:
    """Letterbox ``image`` into the tensor ``spec`` describes (batch of one).

    Inside ``Lease.active()`` the tensor is the lease's buffer, valid until the lease is released;
    otherwise it is a fresh array the caller owns.
    """
    lease = _LEASE.get()
    slot = lease.slot(spec) if lease is not None else None
    return (slot or _Slot(spec)).fill(image)


def to_tensor(canvas: npt.NDArray[np.uint8], spec: InputSpec) -> npt.NDArray[Any]:
    """Convert a letterboxed BGR canvas, already ``spec.size``, into the tensor ``spec`` describes
    (batch of one, a fresh array): colour order, scaling, layout, quantization."""
    if canvas.shape[:2] != spec.size:
        raise ValueError(
            f"the canvas is {canvas.shape[1]}x{canvas.shape[0]}, the input {spec.size[1]}x{spec.size[0]}"
        )
    return _Slot(spec).fill(canvas)[0]

"""Letterbox and tensor conversion, checked against straightforward numpy on synthetic images."""

from __future__ import annotations

import attrs
import cv2
import numpy as np
import pytest

from edgecv.preprocess import LetterboxInfo, letterbox, preprocess, to_tensor
from edgecv.spec import InputSpec, Quantization


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def spec(layout: str = "NCHW", dtype: str = "float32", size=(64, 64), **kwargs) -> InputSpec:
    shape = (1, 3, *size) if layout == "NCHW" else (1, *size, 3)
    return InputSpec(name="images", shape=shape, layout=layout, dtype=dtype, size=size, **kwargs)


# --- letterbox ----------------------------------------------------------------------------------


def test_center_letterbox_wide_image_splits_odd_padding_like_ultralytics() -> None:
    image = random_image(45, 100)  # gain 0.64 -> 64 x 28.8 -> 29 rows, 35 rows of padding
    canvas, info = letterbox(image, (64, 64), "center", pad_value=114)
    assert canvas.shape == (64, 64, 3) and canvas.dtype == np.uint8
    assert info == LetterboxInfo(gain=0.64, pad=(0, 17), image_shape=(45, 100), input_shape=(64, 64))
    resized = cv2.resize(image, (64, 29), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(canvas[17:46], resized)
    assert (canvas[:17] == 114).all()  # top: round(17.5 - 0.1) = 17
    assert (canvas[46:] == 114).all()  # bottom: round(17.5 + 0.1) = 18
    assert canvas[46:].shape[0] == 18


def test_center_letterbox_tall_image_pads_left_and_right() -> None:
    image = random_image(100, 30)  # gain 0.64 -> 19.2 -> 19 columns; 45 columns of padding
    canvas, info = letterbox(image, (64, 64), "center", pad_value=0)
    assert info.pad == (22, 0) and info.gain == pytest.approx(0.64)
    np.testing.assert_array_equal(
        canvas[:, 22:41], cv2.resize(image, (19, 64), interpolation=cv2.INTER_LINEAR)
    )
    assert (canvas[:, :22] == 0).all() and (canvas[:, 41:] == 0).all()
    assert canvas[:, 41:].shape[1] == 23


def test_center_letterbox_non_square_target_and_upscaling() -> None:
    image = random_image(10, 20)
    canvas, info = letterbox(image, (64, 96), "center", pad_value=7)  # gain min(6.4, 4.8) = 4.8
    assert canvas.shape == (64, 96, 3)
    assert info.gain == pytest.approx(4.8)
    assert info.pad == (0, 8)  # 48 rows of image, 16 of padding split 8/8
    np.testing.assert_array_equal(canvas[8:56], cv2.resize(image, (96, 48), interpolation=cv2.INTER_LINEAR))
    assert (canvas[:8] == 7).all() and (canvas[56:] == 7).all()


def test_image_already_at_input_size_is_unchanged() -> None:
    image = random_image(64, 64)
    canvas, info = letterbox(image, (64, 64), "center")
    np.testing.assert_array_equal(canvas, image)
    assert (info.gain, info.pad) == (1.0, (0, 0))


def test_topleft_letterbox_truncates_size_and_pads_bottom_right() -> None:
    image = random_image(45, 100)  # 28.8 rows -> int() = 28 (center mode would round to 29)
    canvas, info = letterbox(image, (64, 64), "topleft", pad_value=114)
    assert info == LetterboxInfo(gain=0.64, pad=(0, 0), image_shape=(45, 100), input_shape=(64, 64))
    expected = np.full((64, 64, 3), 114, np.uint8)
    expected[:28, :64] = cv2.resize(image, (64, 28), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(canvas, expected)


def test_topleft_letterbox_tall_image() -> None:
    image = random_image(100, 30)
    canvas, info = letterbox(image, (64, 64), "topleft", pad_value=50)
    expected = np.full((64, 64, 3), 50, np.uint8)
    expected[:64, :19] = cv2.resize(image, (19, 64), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(canvas, expected)
    assert info.pad == (0, 0)


# --- tensors ------------------------------------------------------------------------------------


@pytest.fixture
def canvas() -> np.ndarray:
    return random_image(64, 64, seed=3)


def test_nchw_rgb_scaled_tensor(canvas: np.ndarray) -> None:
    tensor = to_tensor(canvas, spec("NCHW", color="RGB", scale=1 / 255))
    expected = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor, expected, rtol=0, atol=1e-6)


def test_nchw_bgr_raw_tensor(canvas: np.ndarray) -> None:
    tensor = to_tensor(canvas, spec("NCHW", color="BGR", scale=1.0))
    np.testing.assert_array_equal(tensor, canvas.transpose(2, 0, 1)[None].astype(np.float32))


def test_nhwc_rgb_scaled_tensor(canvas: np.ndarray) -> None:
    tensor = to_tensor(canvas, spec("NHWC", color="RGB", scale=1 / 255))
    assert tensor.shape == (1, 64, 64, 3) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor, canvas[None, :, :, ::-1].astype(np.float32) / 255, rtol=0, atol=1e-6)


def test_nhwc_bgr_raw_tensor(canvas: np.ndarray) -> None:
    tensor = to_tensor(canvas, spec("NHWC", color="BGR", scale=1.0))
    np.testing.assert_array_equal(tensor, canvas[None].astype(np.float32))


def test_rgb_and_bgr_differ_only_by_channel_order(canvas: np.ndarray) -> None:
    rgb = to_tensor(canvas, spec("NCHW", color="RGB", scale=1.0))
    bgr = to_tensor(canvas, spec("NCHW", color="BGR", scale=1.0))
    np.testing.assert_array_equal(rgb[:, ::-1], bgr)
    assert not np.array_equal(rgb, bgr)


def reference_quantize(real: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.rint(real / np.float32(scale)) + zero_point, info.min, info.max).astype(dtype)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_int8_quantized_input(canvas: np.ndarray, layout: str) -> None:
    q = Quantization(scale=0.0186584, zero_point=-14)  # yolov8n full-integer tflite input
    tensor = to_tensor(canvas, spec(layout, dtype="int8", quantization=q, color="RGB", scale=1 / 255))
    real = np.multiply(canvas[None, :, :, ::-1], np.float32(1 / 255), dtype=np.float32)
    expected = reference_quantize(real, q.scale, q.zero_point, np.int8)
    if layout == "NCHW":
        expected = expected.transpose(0, 3, 1, 2)
    assert tensor.dtype == np.int8 and tensor.shape == expected.shape
    np.testing.assert_array_equal(tensor, expected)
    assert tensor.min() == -14  # black pixels -> the zero point


def test_int8_quantization_saturates(canvas: np.ndarray) -> None:
    q = Quantization(scale=0.002, zero_point=0)  # 1.0 / 0.002 = 500 > 127
    tensor = to_tensor(canvas, spec("NHWC", dtype="int8", quantization=q, scale=1 / 255))
    assert tensor.max() == 127
    real = np.multiply(canvas[None, :, :, ::-1], np.float32(1 / 255), dtype=np.float32)
    np.testing.assert_array_equal(tensor, reference_quantize(real, 0.002, 0, np.int8))


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_uint8_quantized_input_with_unit_scale_is_the_raw_pixels(canvas: np.ndarray, layout: str) -> None:
    q = Quantization(scale=1 / 255, zero_point=0)
    tensor = to_tensor(canvas, spec(layout, dtype="uint8", quantization=q, color="RGB", scale=1 / 255))
    rgb = canvas[None, :, :, ::-1]
    expected = rgb if layout == "NHWC" else rgb.transpose(0, 3, 1, 2)
    assert tensor.dtype == np.uint8
    np.testing.assert_array_equal(tensor, expected)


@pytest.mark.parametrize("color", ["RGB", "BGR"])
def test_raw_uint8_input_is_a_fresh_contiguous_copy(canvas: np.ndarray, color: str) -> None:
    """The identity case (Hailo, uint8 TFLite) skips the lookup table, and never hands out the
    canvas itself: it may be the caller's image, which an accelerator reads while it is in flight."""
    q = Quantization(scale=1.0, zero_point=0)
    tensor = to_tensor(canvas, spec("NHWC", dtype="uint8", quantization=q, color=color, scale=1.0))
    assert tensor.flags.c_contiguous and not np.shares_memory(tensor, canvas)
    np.testing.assert_array_equal(tensor[0], canvas[:, :, ::-1] if color == "RGB" else canvas)


def test_per_channel_quantization_uses_first_scale_for_the_whole_tensor(canvas: np.ndarray) -> None:
    q = Quantization(scale=(1 / 255, 2 / 255, 4 / 255), zero_point=(3, 0, 0), axis=3)
    tensor = to_tensor(canvas, spec("NHWC", dtype="uint8", quantization=q, scale=1 / 255))
    expected = np.clip(canvas[None, :, :, ::-1].astype(np.int32) + 3, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(tensor, expected)


def test_uint8_input_without_quantization_takes_raw_pixels(canvas: np.ndarray) -> None:
    tensor = to_tensor(canvas, spec("NHWC", dtype="uint8", color="BGR", scale=1.0))
    assert tensor.dtype == np.uint8
    np.testing.assert_array_equal(tensor, canvas[None])


def test_preprocess_combines_letterbox_and_tensor() -> None:
    image = random_image(45, 100, seed=9)
    tensor, info = preprocess(image, spec("NCHW", size=(64, 64), color="RGB", scale=1 / 255))
    canvas, expected_info = letterbox(image, (64, 64), "center", 114)
    assert info == expected_info
    np.testing.assert_allclose(tensor[0], canvas[:, :, ::-1].transpose(2, 0, 1) / 255, atol=1e-6)
    np.testing.assert_allclose(tensor[0, :, :17], 114 / 255, rtol=0, atol=1e-6)  # padding rows


def test_to_tensor_refuses_a_canvas_of_another_size(canvas: np.ndarray) -> None:
    with pytest.raises(ValueError, match="the canvas is 64x64, the input 32x32"):
        to_tensor(canvas, attrs.evolve(spec("NCHW", color="RGB", scale=1 / 255), size=(32, 32)))

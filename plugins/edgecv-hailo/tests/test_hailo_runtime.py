"""``edgecv_hailo.runtime``: finding HailoRT, refusing old or broken installs, and HailoRunner.

HailoRT is not installed here: availability and ``load_hailo`` are tested against real packages
written to ``tmp_path`` (missing, broken, too old, new enough); HailoRunner runs on the fake
``hailo_platform`` of tests/hailo_fakes.py, which computes real outputs with ONNX Runtime.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgecv.backend import BackendError, ConfigError, ModelError
from edgecv_hailo import runtime
from edgecv_hailo.runtime import (
    DEVICE_HINT,
    INSTALL_HINT,
    availability,
    hailort_error,
    load_hailo,
    parse_nms_by_class,
)

# --- availability and load_hailo on real packages in tmp_path --------------------------------------


@pytest.fixture
def no_hailo_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``hailo_platform`` neither imported nor importable, and forgotten again after the test."""
    for name in [n for n in sys.modules if n == "hailo_platform" or n.startswith("hailo_platform.")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [n for n in sys.modules if n == "hailo_platform" or n.startswith("hailo_platform.")]:
        del sys.modules[name]


def write_package(root: Path, body: str) -> Path:
    """A ``hailo_platform`` package under ``root`` whose ``__init__`` is ``body``."""
    package = root / "hailo_platform"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(body), encoding="utf-8")
    return root


def dev_root(tmp_path: Path, *nodes: str) -> Path:
    root = tmp_path / "dev"
    root.mkdir()
    for node in nodes:
        (root / node).touch()
    return root


def test_availability_without_module_or_device_names_both(no_hailo_module: None, tmp_path: Path) -> None:
    result = availability(dev_root(tmp_path))
    assert not result.available
    assert "hailo_platform" in result.reason and "not installed" in result.reason
    assert "no Hailo device" in result.reason and "hailo*" in result.reason
    assert result.hint == INSTALL_HINT
    assert "apt install hailo-all" in INSTALL_HINT and "hailo.ai/developer-zone" in INSTALL_HINT
    assert "pip install" not in INSTALL_HINT


def test_availability_with_module_but_no_device_says_so(
    no_hailo_module: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(
        str(write_package(tmp_path / "site", "raise RuntimeError('never imported')\n"))
    )
    result = availability(dev_root(tmp_path, "video0"))
    assert not result.available
    assert result.reason.startswith("no Hailo device found")
    assert result.hint == DEVICE_HINT
    assert "hailo_platform" not in sys.modules  # found, not imported


def test_availability_with_module_and_device_is_available(
    no_hailo_module: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(
        str(write_package(tmp_path / "site", "raise RuntimeError('never imported')\n"))
    )
    assert availability(dev_root(tmp_path, "hailo0")).available
    assert "hailo_platform" not in sys.modules


def test_availability_without_module_but_with_device(no_hailo_module: None, tmp_path: Path) -> None:
    result = availability(dev_root(tmp_path, "hailo0"))
    assert not result.available
    assert result.reason == "HailoRT's Python package (hailo_platform) is not installed"
    assert result.hint == INSTALL_HINT


def test_load_hailo_without_module_is_one_backend_error(no_hailo_module: None) -> None:
    with pytest.raises(BackendError) as raised:
        load_hailo()
    assert "not installed" in str(raised.value)
    assert raised.value.hint == INSTALL_HINT
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "body",
    [
        # What a wheel without its native library says (hailo_platform.MissingPyHRTLib is an Exception).
        "class MissingPyHRTLib(Exception):\n    pass\n"
        "raise MissingPyHRTLib('/usr/lib/python3/dist-packages/hailo_platform/pyhailort/\\n"
        "should include a _pyhailort library')\n",
        # A wheel of another version than libhailort.
        "raise ImportError('_pyhailort version (4.20.0) does not match pyhailort version (4.21.0)')\n",
    ],
    ids=["missing-native-library", "version-mismatch"],
)
def test_load_hailo_with_a_broken_install_is_one_backend_error(
    no_hailo_module: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    monkeypatch.syspath_prepend(str(write_package(tmp_path / "site", body)))
    with pytest.raises(BackendError) as raised:
        load_hailo()
    text = str(raised.value)
    assert text.startswith("HailoRT's Python package (hailo_platform) cannot be imported: ")
    assert ("_pyhailort" in text) and "\n" not in text
    assert raised.value.hint == INSTALL_HINT


OLD_HAILORT = """
__version__ = "{version}"

class HailoRTException(Exception):
    pass

class VDevice:  # InferVStreams-era: configure() and vstreams, no InferModel
    def configure(self, hef, params=None):
        raise HailoRTException("not used")

class InferVStreams:
    pass
"""


@pytest.mark.parametrize("version", ["4.15.0", "4.14.1", "4.9.0"])
def test_load_hailo_refuses_hailort_before_4_16(
    no_hailo_module: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.syspath_prepend(str(write_package(tmp_path / "site", OLD_HAILORT.format(version=version))))
    with pytest.raises(BackendError) as raised:
        load_hailo()
    text = str(raised.value)
    assert f"HailoRT {version} is too old" in text
    assert "4.16 or newer" in text and "InferVStreams" in text
    assert "apt install hailo-all" in text


def test_load_hailo_refuses_a_new_version_number_without_infer_model(
    no_hailo_module: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(write_package(tmp_path / "site", OLD_HAILORT.format(version="4.18.0"))))
    with pytest.raises(BackendError, match=r"HailoRT 4\.18\.0 is too old"):
        load_hailo()


def test_load_hailo_returns_a_new_enough_module(
    no_hailo_module: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = OLD_HAILORT.format(version="4.21.0") + (
        "\nVDevice.create_infer_model = lambda self, hef_source, name='': None\n"
    )
    monkeypatch.syspath_prepend(str(write_package(tmp_path / "site", body)))
    module = load_hailo()
    assert module is sys.modules["hailo_platform"]
    assert runtime.hailort_version(module) == "4.21.0"


# --- HailoRT's NMS-by-class frame ------------------------------------------------------------------


def nms_frame(per_class: list[list[list[float]]], max_boxes: int) -> np.ndarray:
    """A raw HailoRT NMS-by-class frame: per class a count then its boxes, packed; garbage after."""
    values: list[float] = []
    for boxes in per_class:
        values.append(float(len(boxes)))
        for box in boxes:
            values.extend(box)
    size = len(per_class) * (1 + 5 * max_boxes)
    frame = np.full(size, 7.5, dtype=np.float32)  # HailoRT does not promise a zeroed tail
    frame[: len(values)] = values
    return frame


def test_parse_nms_by_class_reads_the_packed_layout() -> None:
    person = [[0.1, 0.2, 0.5, 0.4, 0.9], [0.0, 0.0, 0.3, 0.3, 0.6]]
    bus = [[0.2, 0.1, 0.9, 0.8, 0.8]]
    frame = nms_frame([person, [], bus], max_boxes=4)
    boxes = parse_nms_by_class(frame, classes=3, max_boxes=4)
    assert [b.shape for b in boxes] == [(2, 5), (0, 5), (1, 5)]
    assert all(b.dtype == np.float32 for b in boxes)
    np.testing.assert_allclose(boxes[0], person, rtol=1e-6)
    np.testing.assert_allclose(boxes[2], bus, rtol=1e-6)


@pytest.mark.parametrize("count", [5.0, -1.0, 1.5, float("nan"), 1e9])
def test_parse_nms_by_class_refuses_counts_the_frame_cannot_hold(count: float) -> None:
    frame = nms_frame([[], []], max_boxes=4)
    frame[1 + 0] = count  # class 1's count
    with pytest.raises(BackendError, match="malformed NMS output"):
        parse_nms_by_class(frame, classes=2, max_boxes=4)


# --- HailoRT exceptions as edgecv errors ---------------------------------------------------------


class HailoRTException(Exception):
    """Named like HailoRT's: the mapping reads class names and HAILO_* statuses, as HailoRT makes them."""


class HailoRTInvalidHEFException(HailoRTException): ...


class HailoRTHEFNotCompatibleWithDevice(HailoRTException): ...


class HailoRTTimeout(HailoRTException): ...


class HailoRTDriverOperationFailedException(HailoRTException): ...


HEF = Path("/models/yolov8n.hef")


def test_invalid_hef_is_a_model_error_naming_the_file() -> None:
    error = hailort_error(HailoRTInvalidHEFException("Invalid HEF. See hailort.log"), "loading", HEF)
    assert isinstance(error, ModelError)
    assert "yolov8n.hef is not a HEF this HailoRT can load" in str(error)


def test_hef_for_another_chip_names_the_device_and_what_the_message_names() -> None:
    exc = HailoRTHEFNotCompatibleWithDevice("HEF file is not compatible with device (HEF arch: HAILO8)")
    error = hailort_error(exc, "loading", HEF, device_architecture="HAILO8L")
    assert isinstance(error, ModelError)
    assert str(error).startswith(
        "yolov8n.hef was compiled for another Hailo chip than this Hailo-8L (it names HAILO8)"
    )
    assert "--hw-arch hailo8l" in str(error)
    unknown = hailort_error(HailoRTException("(HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE)"), "loading", HEF)
    assert str(unknown).startswith("yolov8n.hef was compiled for another Hailo chip than this device.")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (HailoRTTimeout("Received a timeout"), "HailoRT timed out running yolov8n.hef"),
        (
            HailoRTException("libhailort failed with error: 74 (HAILO_OUT_OF_PHYSICAL_DEVICES)"),
            "No free Hailo device",
        ),
        (HailoRTDriverOperationFailedException("Failure in hailort driver ioctl"), "HailoRT's driver failed"),
        (
            HailoRTException("libhailort failed with error: 76 (HAILO_INVALID_DRIVER_VERSION)"),
            "HailoRT's driver failed",
        ),
        (HailoRTException("HailoRT device not found in the system"), "No Hailo device found"),
        (
            HailoRTException("libhailort failed with error: 8 (HAILO_INVALID_OPERATION)"),
            "HailoRT failed running",
        ),
    ],
)
def test_device_failures_are_backend_errors(exc: Exception, expected: str) -> None:
    error = hailort_error(exc, "running", HEF)
    assert type(error) is BackendError
    assert str(error).startswith(expected)
    assert error.hint


# --- HailoRunner on the fake HailoRT (tests/hailo_fakes.py) ----------------------------------------

SIZE = 32
BOXES = [(8.0, 8.0, 8.0, 8.0), (24.0, 20.0, 10.0, 6.0), (8.5, 8.0, 8.0, 8.0), (16.0, 16.0, 30.0, 30.0)]
"""The tiny head's anchors (cx, cy, w, h in input pixels); anchor 2 overlaps anchor 0."""
WEIGHTS = [(0.9, 0.1), (0.2, 0.8), (0.6, 0.05), (0.05, 0.05)]
"""Per anchor, the class scores for a frame of mean brightness 1.0 (they scale with brightness)."""


def tiny_head(path: Path) -> Path:
    """A YOLOv8-shaped detector on 32x32 frames: output [1, 4 + 2 classes, 4 anchors] whose boxes are
    fixed and whose scores are ``WEIGHTS * mean(frame)``, so each frame's brightness shows in it."""
    import onnx
    from onnx import TensorProto, helper

    base = np.zeros((1, 6, 4), np.float32)
    scale = np.zeros((1, 6, 4), np.float32)
    for anchor, (box, scores) in enumerate(zip(BOXES, WEIGHTS, strict=True)):
        base[0, :4, anchor] = box
        scale[0, 4:, anchor] = scores
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Mul", ["mean", "scale"], ["scores"]),
            helper.make_node("Add", ["base", "scores"], ["output0"]),
        ],
        "tiny_head",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 4])],
        [
            helper.make_tensor("base", TensorProto.FLOAT, base.shape, base.ravel()),
            helper.make_tensor("scale", TensorProto.FLOAT, scale.shape, scale.ravel()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def frame(brightness: float) -> np.ndarray:
    """A flat frame of mean ``brightness`` (0..1) as uint8 (H, W, 3)."""
    return np.full((SIZE, SIZE, 3), round(brightness * 255), np.uint8)


def expected_nms(brightness: float, score_threshold: float = 0.2) -> list[list[tuple[float, ...]]]:
    """The tiny head's detections per class for a frame, worked out by hand: scores scale with the
    brightness; anchor 2 (IoU 0.9 with anchor 0) is suppressed wherever anchor 0 scores higher."""
    mean = round(brightness * 255) / 255
    per_class: list[list[tuple[float, ...]]] = []
    for cls in range(2):
        rows = []
        for anchor, (cx, cy, w, h) in enumerate(BOXES):
            score = WEIGHTS[anchor][cls] * mean
            if score < score_threshold or anchor == 2:
                continue
            rows.append(
                ((cy - h / 2) / SIZE, (cx - w / 2) / SIZE, (cy + h / 2) / SIZE, (cx + w / 2) / SIZE, score)
            )
        per_class.append(sorted(rows, key=lambda row: -row[4]))
    return per_class


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    return tiny_head(tmp_path / "tiny_head.onnx")


@pytest.fixture
def nms_hef(tmp_path: Path, tiny_onnx: Path) -> Path:
    import hailo_fakes

    return hailo_fakes.write_fake_hef(tmp_path / "tiny_nms.hef", tiny_onnx, nms=True, iou_threshold=0.5)


@pytest.fixture
def raw_hef(tmp_path: Path, tiny_onnx: Path) -> Path:
    import hailo_fakes

    return hailo_fakes.write_fake_hef(
        tmp_path / "tiny_raw.hef", tiny_onnx, nms=False, output_dtype="uint8", calibration=frame(1.0)
    )


def fake(**kwargs: Any) -> Any:
    """A fake ``hailo_platform`` module (``module.fake`` holds its hooks and records)."""
    import hailo_fakes

    return hailo_fakes.fake_hailo(**kwargs)


def assert_boxes(got: object, expected: list[list[tuple[float, ...]]]) -> None:
    """``got`` is an NMS output (one (n, 5) float32 array per class) holding ``expected``."""
    assert isinstance(got, list) and len(got) == len(expected)
    for rows, want in zip(got, expected, strict=True):
        assert rows.shape == (len(want), 5)
        if want:
            np.testing.assert_allclose(rows, np.asarray(want, np.float32), atol=1e-5)


def test_open_binds_uint8_input_and_float_nms_output_through_the_scheduler(nms_hef: Path) -> None:
    hailo = fake()
    runner = runtime.HailoRunner.open(hailo, nms_hef)
    try:
        assert runner.input == runtime.StreamInfo("tiny_head/input_layer1", (SIZE, SIZE, 3), "uint8")
        (output,) = runner.outputs
        assert output.nms and output.dtype == "float32" and output.shape == (2, 100, 5)
        assert output.scale is None
        assert runner.batch_size == 1 and runner.queue_size == 4
        calls = hailo.fake.calls
        assert calls[0] == ("VDevice", "ROUND_ROBIN", "UNIQUE")
        assert ("set_format_type", "tiny_head/input_layer1", "UINT8") in calls
        assert ("set_format_type", "tiny_head/yolov8_nms_postprocess", "FLOAT32") in calls
        assert "set_batch_size" not in hailo.fake.names()
        assert hailo.fake.names().index("configure") > hailo.fake.names().index("set_format_type")
    finally:
        runner.close()
    assert hailo.fake.closed


@pytest.mark.parametrize("brightness", [1.0, 0.5])
def test_run_returns_the_nms_boxes_per_class(nms_hef: Path, brightness: float) -> None:
    hailo = fake()
    runner = runtime.HailoRunner.open(hailo, nms_hef)
    try:
        (boxes,) = runner.run(frame(brightness))
    finally:
        runner.close()
    assert isinstance(boxes, list) and all(b.dtype == np.float32 for b in boxes)
    assert_boxes(boxes, expected_nms(brightness))


def test_run_on_hailort_4_18_reads_the_same_layout(nms_hef: Path) -> None:
    # 4.18 wraps get_buffer()'s per-class list in a one-frame list; edgecv reads the buffer itself.
    hailo = fake(version="4.18.0")
    runner = runtime.HailoRunner.open(hailo, nms_hef)
    try:
        (boxes,) = runner.run(frame(1.0))
    finally:
        runner.close()
    assert_boxes(boxes, expected_nms(1.0))


def test_nms_options_reach_hailort(nms_hef: Path) -> None:
    hailo = fake()
    runner = runtime.HailoRunner.open(
        hailo, nms_hef, nms_score_threshold=0.5, nms_iou_threshold=0.95, nms_max_proposals=1
    )
    try:
        assert runner.outputs[0].shape == (2, 1, 5)
        (boxes,) = runner.run(frame(1.0))
    finally:
        runner.close()
    # iou 0.95 keeps anchor 2 (IoU 0.9 with anchor 0) as a candidate, but one box per class remains.
    assert_boxes(boxes, [expected_nms(1.0, 0.5)[0][:1], expected_nms(1.0, 0.5)[1][:1]])


def test_nms_options_on_a_hef_without_nms_are_refused_and_release_the_device(raw_hef: Path) -> None:
    hailo = fake()
    with pytest.raises(ConfigError, match="nms_score_threshold apply to HEFs compiled with NMS"):
        runtime.HailoRunner.open(hailo, raw_hef, nms_score_threshold=0.5)
    assert hailo.fake.closed


def test_raw_outputs_stay_quantized_with_their_scale(raw_hef: Path, tiny_onnx: Path) -> None:
    import onnxruntime as ort

    hailo = fake()
    runner = runtime.HailoRunner.open(hailo, raw_hef)
    try:
        (info,) = runner.outputs
        (raw,) = runner.run(frame(0.5))
    finally:
        runner.close()
    assert not info.nms and info.dtype == "uint8" and info.shape == (1, 6, 4)
    assert info.scale is not None and info.zero_point is not None
    assert isinstance(raw, np.ndarray) and raw.dtype == np.uint8 and raw.shape == (1, 6, 4)
    session = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    tensor = (frame(0.5).astype(np.float32) / 255).transpose(2, 0, 1)[None]
    (reference,) = session.run(None, {"images": tensor})
    real = (raw.astype(np.float32) - info.zero_point) * info.scale
    np.testing.assert_allclose(real, reference, atol=info.scale)  # within one quantization step


def test_float_outputs_are_dequantized_by_hailort(raw_hef: Path) -> None:
    hailo = fake()
    runner = runtime.HailoRunner.open(hailo, raw_hef, float_outputs=True)
    try:
        (info,) = runner.outputs
        (raw,) = runner.run(frame(0.5))
    finally:
        runner.close()
    assert info.dtype == "float32" and info.scale is None
    assert isinstance(raw, np.ndarray) and raw.dtype == np.float32


def test_batch_size_is_set_before_configure(nms_hef: Path) -> None:
    hailo = fake()
    runner = runtime.HailoRunner.open(hailo, nms_hef, batch_size=2)
    try:
        names = hailo.fake.names()
        assert ("set_batch_size", 2) in hailo.fake.calls
        assert names.index("set_batch_size") < names.index("configure")
        assert runner.batch_size == 2 and runner.queue_size >= 2
    finally:
        runner.close()


def test_submit_keeps_frames_in_flight_and_each_gets_its_own_outputs(nms_hef: Path) -> None:
    hailo = fake()
    state = hailo.fake
    runner = runtime.HailoRunner.open(hailo, nms_hef)
    results: dict[int, Any] = {}
    order: list[int] = []
    brightness = [1.0, 0.5, 0.8, 0.3]
    try:
        state.gate.clear()  # the device holds every job: all of them are in flight at once
        for index, value in enumerate(brightness):
            pixels = frame(value)

            def done(outcome: object, index: int = index) -> None:
                results[index] = outcome
                order.append(index)

            runner.submit(pixels, done)
            pixels[:] = 0  # the caller reuses its frame at once: the queued one must not change
        assert state.in_flight == len(brightness) == runner.queue_size
        assert not results
        state.gate.set()
    finally:
        runner.close()  # waits for the frames in flight
    assert order == [0, 1, 2, 3]
    assert state.max_in_flight == 4
    for index, value in enumerate(brightness):
        (boxes,) = results[index]
        assert_boxes(boxes, expected_nms(value))
    state.check_callbacks()
    assert state.closed


def test_submit_waits_for_room_and_times_out_as_one_backend_error(nms_hef: Path) -> None:
    hailo = fake(queue_size=2)
    state = hailo.fake
    runner = runtime.HailoRunner.open(hailo, nms_hef, timeout_ms=150)
    outcomes: list[object] = []
    try:
        state.gate.clear()
        runner.submit(frame(1.0), outcomes.append)
        runner.submit(frame(1.0), outcomes.append)
        with pytest.raises(BackendError, match=r"queue for tiny_nms\.hef stayed full for 150 ms"):
            runner.submit(frame(1.0), outcomes.append)
        assert "run_async" in state.names() and state.names().count("run_async") == 2
        state.gate.set()
    finally:
        runner.close()
    assert len(outcomes) == 2 and all(isinstance(o, list) for o in outcomes)


def test_a_failed_frame_reaches_done_as_a_backend_error(nms_hef: Path) -> None:
    hailo = fake()
    state = hailo.fake
    runner = runtime.HailoRunner.open(hailo, nms_hef)
    outcomes: list[object] = []
    try:
        state.fail_next(1, "HAILO_INTERNAL_FAILURE")
        runner.submit(frame(1.0), outcomes.append)
        runner.submit(frame(0.5), outcomes.append)
    finally:
        runner.close()
    failed, good = outcomes
    assert isinstance(failed, BackendError)
    assert "HailoRT failed running tiny_nms.hef" in str(failed) and "HAILO_INTERNAL_FAILURE" in str(failed)
    assert isinstance(good, list)
    state.check_callbacks()


def test_done_that_raises_does_not_escape_into_hailort(nms_hef: Path) -> None:
    hailo = fake()
    runner = runtime.HailoRunner.open(hailo, nms_hef)

    def done(outcome: object) -> None:
        raise RuntimeError("the caller's bug")

    try:
        runner.submit(frame(1.0), done)
    finally:
        runner.close()
    hailo.fake.check_callbacks()


def test_close_is_idempotent_and_refuses_later_frames(nms_hef: Path) -> None:
    hailo = fake()
    runner = runtime.HailoRunner.open(hailo, nms_hef)
    runner.close()
    runner.close()
    assert hailo.fake.closed and hailo.fake.names().count("shutdown") == 1
    with pytest.raises(BackendError, match="closed"):
        runner.run(frame(1.0))
    with pytest.raises(BackendError, match="closed"):
        runner.submit(frame(1.0), lambda outcome: None)


def test_close_gives_up_on_a_stuck_frame_after_the_timeout(nms_hef: Path) -> None:
    hailo = fake()
    state = hailo.fake
    runner = runtime.HailoRunner.open(hailo, nms_hef, timeout_ms=100)
    outcomes: list[object] = []
    state.stall(1)
    runner.submit(frame(1.0), outcomes.append)
    runner.close()  # waits 100 ms, then shuts down: HailoRT aborts the job
    assert state.closed
    (aborted,) = outcomes
    assert isinstance(aborted, BackendError)
    assert str(aborted).startswith("HailoRT aborted running tiny_nms.hef (the model was shut down")


def test_a_frame_of_the_wrong_size_is_a_config_error(nms_hef: Path) -> None:
    runner = runtime.HailoRunner.open(fake(), nms_hef)
    try:
        with pytest.raises(ConfigError, match=r"takes a uint8 \[32, 32, 3\] frame"):
            runner.run(np.zeros((16, 16, 3), np.uint8))
        with pytest.raises(ConfigError, match="got float32"):
            runner.run(np.zeros((SIZE, SIZE, 3), np.float32))
    finally:
        runner.close()


def test_device_describes_the_chip_and_leaves_empty_fields_out(nms_hef: Path) -> None:
    hailo = fake(version="4.21.0", arch="HAILO8L", firmware="4.20.0")
    runner = runtime.HailoRunner.open(hailo, nms_hef)
    try:
        assert runner.device() == {
            "device": "Hailo-8L",
            "architecture": "HAILO8L",
            "firmware": "4.20.0",
            "hailort": "4.21.0",
            "board": "Hailo-8",
        }
        hailo.fake.serial_number = "HLLWM2B233700123"
        assert runner.device()["serial"] == "HLLWM2B233700123"
        hailo.fake.identify_error = hailo.pyhailort.pyhailort.HailoRTException("control failed\nbadly")
        assert runner.device() == {"hailort": "4.21.0", "error": "control failed badly"}
    finally:
        runner.close()
    assert hailo.fake.closed  # the queried device is released too


def test_temperature_is_the_hotter_sensor_or_none(nms_hef: Path) -> None:
    hailo = fake(temperature=(51.0, 52.5))
    state = hailo.fake
    runner = runtime.HailoRunner.open(hailo, nms_hef)
    try:
        assert runner.temperature() == 52.5
        state.temperature = (float("nan"), 48.0)
        assert runner.temperature() == 48.0
        state.temperature = hailo.pyhailort.pyhailort.HailoRTException("control failed")
        assert runner.temperature() is None
    finally:
        runner.close()
    assert runner.temperature() is None  # after close too: never raises


def test_describe_without_a_model(nms_hef: Path) -> None:
    hailo = fake(version="4.20.0")
    assert runtime.describe(hailo) == {
        "hailort": "4.20.0",
        "device": "Hailo-8L",
        "architecture": "HAILO8L",
        "firmware": "4.20.0",
        "board": "Hailo-8",
        "temperature_c": 52.5,
    }
    assert hailo.fake.closed


def test_a_file_that_is_not_a_hef_is_a_model_error(tmp_path: Path) -> None:
    hailo = fake()
    bogus = tmp_path / "model.hef"
    bogus.write_bytes(b"\x00not a hef")
    with pytest.raises(ModelError, match=r"model\.hef is not a HEF this HailoRT can load"):
        runtime.HailoRunner.open(hailo, bogus)
    assert hailo.fake.closed
    with pytest.raises(ModelError, match="does not exist"):
        runtime.HailoRunner.open(hailo, tmp_path / "missing.hef")


def test_a_hef_for_another_chip_names_both(tmp_path: Path, tiny_onnx: Path) -> None:
    import hailo_fakes

    hef = hailo_fakes.write_fake_hef(tmp_path / "big.hef", tiny_onnx, hw_arch="hailo8")
    hailo = fake(arch="HAILO8L")
    with pytest.raises(ModelError) as raised:
        runtime.HailoRunner.open(hailo, hef)
    assert str(raised.value).startswith("big.hef was compiled for another Hailo chip than this Hailo-8L.")
    assert "edgecv export --to hailo --hw-arch hailo8l" in str(raised.value)
    assert hailo.fake.closed


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ({"busy": True}, "No free Hailo device opening the device for tiny_nms.hef"),
        (
            {"vdevice_status": "HAILO_INVALID_DRIVER_VERSION"},
            "HailoRT's driver failed opening the device for",
        ),
    ],
)
def test_device_problems_at_open_are_backend_errors(
    nms_hef: Path, setup: dict[str, object], expected: str
) -> None:
    hailo = fake()
    for name, value in setup.items():
        setattr(hailo.fake, name, value)
    with pytest.raises(BackendError) as raised:
        runtime.HailoRunner.open(hailo, nms_hef)
    assert type(raised.value) is BackendError and str(raised.value).startswith(expected)
    assert hailo.fake.closed


@pytest.mark.parametrize("version", ["4.15.0", "4.10.0"])
def test_the_fake_of_an_old_hailort_is_refused(version: str) -> None:
    with pytest.raises(BackendError, match=rf"HailoRT {version} is too old: edgecv needs HailoRT 4\.16"):
        runtime.check_version(fake(version=version))
    runtime.check_version(fake(version="4.16.0"))


def test_yolov8n_on_bus_finds_people_and_the_bus(tmp_path: Path, bus_path: Path, models: Path) -> None:
    import hailo_fakes

    hef = hailo_fakes.write_fake_hef(tmp_path / "yolov8n.hef", models / "yolov8n_fp32_dequant.onnx")
    runner = runtime.HailoRunner.open(fake(), hef)
    try:
        assert runner.input.shape == (640, 640, 3)
        (boxes,) = runner.run(hailo_fakes.letterboxed_rgb(bus_path, (640, 640)))
    finally:
        runner.close()
    assert isinstance(boxes, list) and len(boxes) == 80
    people, bus = boxes[0], boxes[5]
    assert len(people[people[:, 4] > 0.5]) >= 3 and len(bus[bus[:, 4] > 0.5]) == 1
    assert np.all((people[:, :4] >= 0) & (people[:, :4] <= 1.01))

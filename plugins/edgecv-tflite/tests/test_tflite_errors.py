"""Bad TFLite input gives one ``error:`` line naming the fix (exit 1, no traceback), or a typed error."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

import edgecv
from edgecv import BackendError, ConfigError, ModelError, plugins
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv_tflite import runtime


@pytest.fixture
def truncated(models: Path, tmp_path: Path) -> Path:
    data = (models / "yolov8n_int8.tflite").read_bytes()
    target = tmp_path / "yolov8n_int8.tflite"
    target.write_bytes(data[: len(data) // 2])
    return target


def test_corrupt_model(bus_path: Path, truncated: Path) -> None:
    line = assert_one_line_error(run_edgecv("predict", bus_path, "--model", truncated))
    assert "TFLite cannot load yolov8n_int8.tflite" in line
    assert "corrupt, truncated or not a TFLite model: export or download it again" in line


def test_text_file_named_tflite(bus_path: Path, tmp_path: Path) -> None:
    fake = tmp_path / "model.tflite"
    fake.write_text("not a flatbuffer\n")
    line = assert_one_line_error(run_edgecv("predict", bus_path, "--model", fake, "--backend", "tflite"))
    assert "TFLite cannot load model.tflite" in line


def test_edgetpu_model_without_edge_tpu(bus_path: Path, models: Path, tmp_path: Path) -> None:
    status = runtime.check_edgetpu()
    if status.available:
        pytest.skip("an Edge TPU is present on this machine")
    model = tmp_path / "yolov8n_full_integer_quant_edgetpu.tflite"
    shutil.copyfile(models / "yolov8n_full_integer_quant.tflite", model)
    # auto: the Edge TPU backend is unavailable, the CPU backend refuses the compiled model.
    line = assert_one_line_error(run_edgecv("predict", bus_path, "--model", model))
    assert "is compiled for the Edge TPU and cannot run on the CPU TFLite backend" in line
    assert status.reason in line and "libedgetpu1-std" in line and "--backend tflite" in line
    # asking for the Edge TPU backend says what is missing and how to install it.
    line = assert_one_line_error(run_edgecv("predict", bus_path, "--model", model, "--backend", "edgetpu"))
    assert f"Backend 'edgetpu' is not available: {status.reason}" in line and "libedgetpu1-std" in line


def test_edgetpu_availability_says_what_is_missing(tmp_path: Path) -> None:
    status = runtime.check_edgetpu()
    assert status.available or ("libedgetpu.so.1" in status.reason or "Edge TPU device" in status.reason)
    # The device scan reads sysfs and /dev: a Coral USB stick and a PCIe apex device are both found.
    device = tmp_path / "sys" / "bus" / "usb" / "devices" / "2-1"
    device.mkdir(parents=True)
    (device / "idVendor").write_text("18d1\n")
    (device / "idProduct").write_text("9302\n")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "apex_0").write_text("")
    assert runtime.find_edgetpu_devices(tmp_path / "sys", tmp_path / "dev") == ["usb:0", "pci:0"]
    assert runtime.find_edgetpu_devices(tmp_path / "none", tmp_path / "none") == []


def test_edgetpu_delegate_seam_reports_a_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    if runtime.find_edgetpu_library() is not None:
        pytest.skip("libedgetpu is installed here")
    with pytest.raises(BackendError, match="Cannot open the Edge TPU device 'usb:0'"):
        runtime.load_edgetpu_delegate("usb:0")


def test_edgetpu_backend_opens_through_the_edgetpu_path(models: Path, tmp_path: Path) -> None:
    # The registered object's own ``open`` is the Edge TPU one: its options, its device check, its delegate.
    backend = next(b for b in plugins.backends() if b.name == "edgetpu")
    model = tmp_path / "yolov8n_full_integer_quant_edgetpu.tflite"
    shutil.copyfile(models / "yolov8n_full_integer_quant.tflite", model)
    with pytest.raises(ConfigError, match="Unknown edgetpu option"):
        backend.open(model, {"providers": ["CPU"]})
    with pytest.raises(ConfigError, match="Unknown Edge TPU device 'gpu:0'"):
        backend.open(model, {"device": "gpu:0"})
    if runtime.find_edgetpu_library() is None and importlib.util.find_spec("pycoral") is None:
        with pytest.raises(BackendError, match="Cannot open the Edge TPU device 'usb:0'"):
            backend.open(model, {"device": "usb:0"})


def test_unknown_option_and_bad_threads(models: Path) -> None:
    with pytest.raises(ConfigError, match="Unknown tflite option"):
        edgecv.load(models / "yolov8n_int8.tflite", backend="tflite", providers=["CPU"])
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        edgecv.load(models / "yolov8n_int8.tflite", threads=0)


def test_folder_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is a folder"):
        edgecv.load(tmp_path, backend="tflite")


def test_successful_predict_leaves_stderr_empty(bus_path: Path, models: Path) -> None:
    # LiteRT writes "INFO: Created TensorFlow Lite XNNPACK delegate" to fd 2; the plugin holds it back.
    result = run_edgecv("predict", bus_path, "--model", models / "yolov8n_int8.tflite", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

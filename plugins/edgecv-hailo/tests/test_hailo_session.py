"""``HailoSession`` through ``edgecv.load`` on the fake HailoRT: spec, sidecar, options, frames in flight.

The fake device computes with ONNX Runtime on the reference model (tests/hailo_fakes.py), so the
detections here are real; the conformance kit (test_hailo_conformance.py) checks them against the
onnx backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import hailo_fakes
import numpy as np
import pytest

import edgecv
from edgecv.backend import AsyncSession, ConfigError, ModelError
from edgecv.images import read_image
from edgecv.spec import COCO80
from edgecv.testing.reference import reference_model
from edgecv_hailo.sidecar import write_sidecar


@pytest.fixture
def hailo(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return hailo_fakes.install_fake(monkeypatch, queue_size=4)


@pytest.fixture(scope="module")
def nms_hef(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hef")
    return hailo_fakes.write_fake_hef(folder / "yolov8n.hef", models / "yolov8n_fp32_dequant.onnx", nms=True)


def test_the_device_gets_the_letterboxed_frame_as_uint8_nhwc(
    hailo: ModuleType, nms_hef: Path, bus_path: Path
) -> None:
    with edgecv.load(nms_hef) as model:
        assert model.backend == "hailo" and model.spec.decoder.name == "hailo-nms"
        tensor, _ = model.preprocess(read_image(bus_path))
        # No float tensor on the host: the preprocessing stops at the uint8 canvas.
        assert tensor.dtype == np.uint8 and tensor.shape == (1, 640, 640, 3)
        assert model.spec.outputs[0].shape == (1, 80, 100, 5)
        assert model.names == COCO80  # no sidecar: 80 classes take COCO's names
        found = model(bus_path)
        assert {"bus", "person"} <= set(found.labels)
        assert found.image_shape == read_image(bus_path).shape[:2]


def test_sidecar_names_and_a_stale_sidecar(
    hailo: ModuleType, nms_hef: Path, tmp_path: Path, bus_path: Path
) -> None:
    hef = tmp_path / nms_hef.name
    hef.write_bytes(nms_hef.read_bytes())
    names = [f"thing{i}" for i in range(80)]
    write_sidecar(hef, {"names": repr(names)})
    with edgecv.load(hef) as model:
        assert list(model.names) == names
        assert "thing5" in model(bus_path).labels  # class 5 is COCO's bus
    # Compiled again (other thresholds) without exporting: the sidecar describes the old bytes.
    hailo_fakes.write_fake_hef(hef, reference_model(), nms=True, score_threshold=0.3)
    with pytest.raises(ModelError, match="written for another HEF"):
        edgecv.load(hef)
    assert hailo.fake.closed  # the failed load gave the device back


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threads": 2}, "Unknown Hailo option"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"nms_iou_threshold": 1.5}, "nms_iou_threshold must be a number from 0 to 1"),
        ({"nms_score_threshold": True}, "nms_score_threshold must be a number from 0 to 1"),
    ],
)
def test_bad_options_are_config_errors(
    hailo: ModuleType, nms_hef: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        edgecv.load(nms_hef, **options)


def test_not_a_hef_is_a_model_error(hailo: ModuleType, tmp_path: Path) -> None:
    fake = tmp_path / "model.hef"
    fake.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match=r"model\.hef"):
        edgecv.load(fake)
    with pytest.raises(ModelError, match="is a folder"):
        edgecv.load(tmp_path, backend="hailo")


def test_frames_in_flight_resolve_in_order_with_the_same_detections(
    hailo: ModuleType, nms_hef: Path, bus_path: Path, zidane_path: Path
) -> None:
    frames = [read_image(path) for path in (bus_path, zidane_path) * 4]
    with edgecv.load(nms_hef) as model:
        assert isinstance(model.session, AsyncSession) and model.asynchronous
        assert model.session.depth == 4  # the device's queue
        expected = [model.predict(frame) for frame in frames]
        hailo.fake.gate.clear()  # hold the device: every submit must return without waiting
        futures = [model.submit(frame) for frame in frames[:4]]
        assert not any(future.done() for future in futures)
        hailo.fake.gate.set()
        futures += [model.submit(frame) for frame in frames[4:]]
        results = [future.result(timeout=30) for future in futures]
        assert hailo.fake.max_in_flight == 4
    for got, want in zip(results, expected, strict=True):
        assert got.labels == want.labels
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)


def test_a_failed_frame_fails_its_future_only(hailo: ModuleType, nms_hef: Path, bus_path: Path) -> None:
    image = read_image(bus_path)
    with edgecv.load(nms_hef) as model:
        hailo.fake.fail_next()
        failed = model.submit(image)
        with pytest.raises(edgecv.BackendError):
            failed.result(timeout=30)
        assert len(model.submit(image).result(timeout=30)) > 0


def test_two_models_share_the_device(hailo: ModuleType, nms_hef: Path, bus_path: Path) -> None:
    """Two cameras, two models, one Hailo: one VDevice, HailoRT's scheduler interleaves them."""
    first = edgecv.load(nms_hef)
    second = edgecv.load(nms_hef)
    assert len(hailo.fake.live_vdevices) == 1
    first.close()
    assert len(second(bus_path)) > 0  # closing one model leaves the other's device open
    second.close()
    assert hailo.fake.closed


def test_device_report_and_chip_temperature(hailo: ModuleType, nms_hef: Path) -> None:
    hailo.fake.temperature = (61.0, 63.5)
    with edgecv.load(nms_hef) as model:
        assert isinstance(model.session, edgecv.DeviceSession)
        device = dict(model.session.device())
        assert device["device"] == "Hailo-8L" and device["hailort"] == hailo.__version__
        assert model.session.temperature() == 63.5


def test_a_hef_with_a_non_utf8_name_loads(
    hailo: ModuleType, nms_hef: Path, tmp_path: Path, bus_path: Path
) -> None:
    """HailoRT's binding takes a path as UTF-8 text: such a file is handed over as its bytes."""
    hef = tmp_path / os.fsdecode(b"caf\xe9.hef")
    hef.write_bytes(nms_hef.read_bytes())
    with edgecv.load(hef) as model:
        assert {"bus", "person"} <= set(model(bus_path).labels)

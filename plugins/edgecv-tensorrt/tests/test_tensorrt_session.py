"""``TensorRTSession`` through ``edgecv.load`` on the fake TensorRT and CUDA (tests/trt_fakes.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import trt_fakes

import edgecv
from edgecv.backend import ConfigError, ModelError
from edgecv.images import read_image
from edgecv_tensorrt.session import TensorRTSession
from edgecv_tensorrt.sidecar import read_sidecar, sidecar_path, write_engine

REFERENCE = "yolov8n_fp32_dequant.onnx"


@pytest.fixture
def trt(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return trt_fakes.install_fakes(monkeypatch)


@pytest.fixture
def engine(tmp_path: Path, models: Path, trt: ModuleType) -> Path:
    return trt_fakes.write_fake_engine(models / REFERENCE, tmp_path / "yolov8n.engine", trt)


def one_line_model_error(path: Path, **options: object) -> str:
    with pytest.raises(ModelError) as caught:
        edgecv.load(path, backend="tensorrt", **options)
    text = str(caught.value)
    assert "\n" not in text, text
    return text


def test_bus_detections_match_the_onnx_backend_within_1px(engine: Path, models: Path, bus_path: Path) -> None:
    image = read_image(bus_path)
    ours = edgecv.load(engine)(image)  # auto: only tensorrt reads .engine files
    theirs = edgecv.load(models / REFERENCE, backend="onnx")(image)
    assert (
        [d.label for d in ours]
        == [d.label for d in theirs]
        == ["person", "person", "person", "bus", "person"]
    )
    np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-4)
    assert np.abs(ours.boxes - theirs.boxes).max() <= 1.0


def test_spec_comes_from_the_engine_and_its_sidecar(engine: Path) -> None:
    model = edgecv.load(engine)
    assert model.backend == "tensorrt"
    assert model.spec.input.shape == (1, 3, 640, 640)
    assert [o.shape for o in model.spec.outputs] == [(1, 84, 8400)]
    assert model.names[:2] == ("person", "bicycle")
    assert model.spec.metadata == read_sidecar(engine).metadata  # the ONNX's metadata_props, kept
    session = model.session
    assert isinstance(session, TensorRTSession)
    assert session.engine_path == engine
    assert session.machine.gpu_name == trt_fakes.FAKE_GPU


def test_run_returns_copies_and_bare_the_pinned_buffers(engine: Path, trt: ModuleType) -> None:
    model = edgecv.load(engine)
    tensor = np.zeros((1, 3, 640, 640), np.float32)
    first = model.infer(tensor)[0]
    kept = first.copy()
    model.infer(np.ones_like(tensor))
    np.testing.assert_array_equal(first, kept)  # not overwritten by the next frame
    bare = model.bare_infer()(tensor)
    assert isinstance(bare, list)
    assert bare[0].base is not None  # a view of the pinned output buffer: no per-frame copy
    assert trt.fake_cuda.frames()[-1][-1] == "synchronize"


def test_close_releases_the_gpu_buffers(engine: Path, trt: ModuleType) -> None:
    with edgecv.load(engine) as model:
        model.infer(np.zeros((1, 3, 640, 640), np.float32))
        assert trt.fake_cuda.live() == 5
    assert trt.fake_cuda.live() == 0


def test_an_engine_without_its_sidecar_is_refused(engine: Path) -> None:
    sidecar_path(engine).unlink()
    text = one_line_model_error(engine)
    assert "has no sidecar" in text and "edgecv export --to tensorrt" in text


def test_an_engine_built_on_another_gpu_is_refused(engine: Path) -> None:
    data = json.loads(sidecar_path(engine).read_text())
    data.update(gpu_name="NVIDIA GeForce RTX 4090", compute_capability="8.9")
    sidecar_path(engine).write_text(json.dumps(data))
    text = one_line_model_error(engine)
    assert "NVIDIA GeForce RTX 4090 (compute capability 8.9)" in text
    assert f"{trt_fakes.FAKE_GPU} (compute capability {trt_fakes.FAKE_CAPABILITY})" in text
    assert "Rebuild it here: edgecv export" in text


def test_a_corrupt_engine_vouched_for_by_its_sidecar_fails_to_deserialize(
    engine: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.engine"
    write_engine(broken, b"\x00" + engine.read_bytes()[1:], read_sidecar(engine))
    text = one_line_model_error(broken)
    assert text.startswith("TensorRT 10.3.0.30 cannot deserialize broken.engine: ")
    assert "Magic tag does not match" in text
    assert capfd.readouterr().err == ""


def test_build_options_on_an_engine_are_a_config_error(engine: Path) -> None:
    with pytest.raises(ConfigError, match=r"apply when building from an \.onnx file"):
        edgecv.load(engine, precision="fp16")


def test_unknown_option_is_a_config_error(engine: Path) -> None:
    with pytest.raises(ConfigError, match="Unknown TensorRT option"):
        edgecv.load(engine, threads=2)


def test_a_folder_is_a_model_error(tmp_path: Path, trt: ModuleType) -> None:
    folder = tmp_path / "x.engine"
    folder.mkdir()
    assert "is a folder" in one_line_model_error(folder)


def test_onnx_still_picks_onnx_runtime_by_default(engine: Path, models: Path) -> None:
    """Both available: ``.onnx`` stays on a CPU runtime (no surprise engine build); ``.engine`` is ours."""
    assert edgecv.load(models / REFERENCE).backend in {"onnx", "openvino"}
    assert edgecv.load(engine).backend == "tensorrt"


def test_onnx_is_built_once_then_loaded_from_the_engine_cache(
    monkeypatch: pytest.MonkeyPatch, models: Path, bus_path: Path
) -> None:
    from trt_fake_builder import fake_builder

    trt = trt_fakes.install_fakes(monkeypatch, builder=fake_builder)
    image = read_image(bus_path)
    first = edgecv.load(models / REFERENCE, backend="tensorrt")
    assert len(trt.builds) == 1
    again = edgecv.load(models / REFERENCE, backend="tensorrt")
    assert len(trt.builds) == 1  # the cached engine, not a second build
    assert again.session.engine_path == first.session.engine_path
    theirs = edgecv.load(models / REFERENCE, backend="onnx")(image)
    ours = again(image)
    assert [d.label for d in ours] == [d.label for d in theirs]
    assert np.abs(ours.boxes - theirs.boxes).max() <= 1.0
    assert again.spec.metadata == first.spec.metadata != {}


def test_another_format_is_a_model_error(tmp_path: Path, trt: ModuleType) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(b"TFL3")
    assert "is not a TensorRT engine (.engine, .plan) or an .onnx file" in one_line_model_error(model)

"""Loading NCNN models: folders (edgecv's and Ultralytics' layout), .param/.bin pairs, options."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ncnn_helpers import YOLO11, expected_from_sources, exported

import edgecv
from edgecv.backend import (
    BackendError,
    ConfigError,
    ModelError,
    Session,
    TensorSpec,
    read_image,
    stderr_silenced,
)
from edgecv.names import COCO80
from edgecv.testing.reference import asset
from edgecv_ncnn.paramfile import looks_like_model
from edgecv_ncnn.session import NcnnSession

# What Ultralytics' NCNN export writes next to model.ncnn.param / model.ncnn.bin (yaml.safe_dump),
# here for YOLO11n at 320 with class 0 renamed, to prove the names come from this file.
ULTRALYTICS_METADATA = """\
description: Ultralytics YOLO11n model trained on /usr/src/ultralytics/ultralytics/cfg/datasets/coco.yaml
author: Ultralytics
date: '2025-11-12T00:26:05.595922'
version: 8.3.227
license: AGPL-3.0 License (https://ultralytics.com/license)
docs: https://docs.ultralytics.com
stride: 32
task: detect
batch: 1
imgsz:
- 320
- 320
names:
{names}
args:
  batch: 1
  half: false
  int8: false
  nms: false
channels: 3
"""


@pytest.fixture(scope="module")
def bus() -> np.ndarray:
    return read_image(asset("images", "bus.jpg"))


def ultralytics_folder(tmp_path: Path, exported_folder: Path) -> Path:
    folder = tmp_path / "yolo11n_ncnn_model"
    folder.mkdir()
    for name in ("model.ncnn.param", "model.ncnn.bin"):
        shutil.copyfile(exported_folder / name, folder / name)
    (folder / "model_ncnn.py").write_text("import ncnn\n")  # Ultralytics writes this too
    names = ["human", *COCO80[1:]]
    listing = "\n".join(f"  {i}: {name}" for i, name in enumerate(names))
    (folder / "metadata.yaml").write_text(ULTRALYTICS_METADATA.format(names=listing))
    return folder


def test_ultralytics_export_folder(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, bus: np.ndarray
) -> None:
    folder = ultralytics_folder(tmp_path, exported(tmp_path_factory, YOLO11))
    model = edgecv.load(folder, conf=0.25, iou=0.45)
    assert model.backend == "ncnn"
    assert model.spec.imgsz == (320, 320)
    assert model.spec.input.shape == (1, 3, 320, 320)
    assert model.names[:2] == ("human", "bicycle") and len(model.names) == 80
    assert model.spec.arch == "yolov8"
    assert model.spec.metadata["version"] == "8.3.227"
    expected = [("human" if label == "person" else label) for label, _ in expected_from_sources(YOLO11)]
    assert model(bus).labels == expected


@pytest.mark.parametrize("which", ["model.ncnn.param", "model.ncnn.bin"])
def test_either_file_of_the_pair(
    tmp_path_factory: pytest.TempPathFactory, bus: np.ndarray, which: str
) -> None:
    folder = exported(tmp_path_factory, YOLO11)
    model = edgecv.load(folder / which, conf=0.25, iou=0.45)
    assert model.backend == "ncnn" and model.spec.imgsz == (320, 320)  # metadata.yaml beside it
    assert model(bus).labels == [label for label, _ in expected_from_sources(YOLO11)]


def test_bare_pair_without_metadata(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, bus: np.ndarray
) -> None:
    folder = exported(tmp_path_factory, YOLO11)
    shutil.copyfile(folder / "model.ncnn.param", tmp_path / "yolo11n.param")
    shutil.copyfile(folder / "model.ncnn.bin", tmp_path / "yolo11n.bin")
    model = edgecv.load(tmp_path / "yolo11n.param", imgsz=320, conf=0.25, iou=0.45)
    assert model.backend == "ncnn"
    assert model.spec.input.shape == (1, 3, None, None)  # no metadata: the size is the user's
    assert model.spec.outputs[0].name == "out0" and model.spec.outputs[0].shape[:2] == (1, 84)
    assert model.names == COCO80  # 84 channels: the core's COCO default
    assert model(bus).labels == [label for label, _ in expected_from_sources(YOLO11)]


def test_auto_accepts_only_ncnn_files(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = exported(tmp_path_factory, YOLO11)
    assert looks_like_model(folder) and looks_like_model(folder / "model.ncnn.bin")
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)  # e.g. OpenVINO's: no .param beside it
    (tmp_path / "notes.txt").write_text("hi")
    assert not looks_like_model(tmp_path / "weights.bin")
    assert not looks_like_model(tmp_path / "notes.txt")
    assert not looks_like_model(tmp_path)


def test_several_graphs_in_a_folder(tmp_path: Path) -> None:
    for stem in ("a", "b"):
        (tmp_path / f"{stem}.param").write_text("7767517\n")
        (tmp_path / f"{stem}.bin").write_bytes(b"")
    with pytest.raises(ModelError, match=r"several NCNN graphs \(a.param, b.param\)"):
        edgecv.load(tmp_path, backend="ncnn")


def test_bin_without_param(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ModelError, match=r"has no graph file model\.param"):
        edgecv.load(tmp_path / "model.bin", backend="ncnn")


def test_truncated_param(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path / "m"
    shutil.copytree(exported(tmp_path_factory, YOLO11), folder)
    text = (folder / "model.ncnn.param").read_text()
    (folder / "model.ncnn.param").write_text(text[: len(text) // 2])
    with pytest.raises(ModelError, match=r"not a valid NCNN param file \(the header declares") as info:
        edgecv.load(folder, backend="ncnn")
    assert "\n" not in str(info.value)


def test_broken_metadata_names(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path / "m"
    shutil.copytree(exported(tmp_path_factory, YOLO11), folder)
    (folder / "metadata.yaml").write_text("imgsz: [320, 320]\nnames:\n  0:\n    deep: person\n")
    with pytest.raises(ModelError, match=r"Cannot read .*metadata.yaml: line 2 \(names\)"):
        edgecv.load(folder, backend="ncnn")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"providers": ["CPU"]},
            "Unknown ncnn option(s): providers. Known options: adaptive, fp16, light_mode, threads, vulkan",
        ),
        ({"threads": 0}, "ncnn threads must be a positive integer, got 0"),
        ({"fp16": "yes"}, "ncnn option fp16 must be True or False, got 'yes'"),
        ({"adaptive": 1}, "ncnn option adaptive must be True or False, got 1"),
    ],
)
def test_bad_options(
    tmp_path_factory: pytest.TempPathFactory, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        edgecv.load(exported(tmp_path_factory, YOLO11), backend="ncnn", **options)
    assert message in str(info.value)


def test_options_reach_ncnn(tmp_path_factory: pytest.TempPathFactory) -> None:
    model = edgecv.load(exported(tmp_path_factory, YOLO11), backend="ncnn", threads=1, light_mode=False)
    assert isinstance(model.session, NcnnSession)
    opt = model.session.net.opt
    assert (opt.num_threads, opt.lightmode, opt.use_fp16_storage, opt.use_vulkan_compute) == (
        1,
        False,
        False,
        False,
    )
    model = edgecv.load(exported(tmp_path_factory, YOLO11), backend="ncnn", fp16=True)
    assert isinstance(model.session, NcnnSession)
    assert model.session.net.opt.use_fp16_arithmetic and model.session.net.opt.use_fp16_storage


def test_session_protocol_and_close(tmp_path_factory: pytest.TempPathFactory, bus: np.ndarray) -> None:
    folder = exported(tmp_path_factory, YOLO11)
    session = NcnnSession.open(folder, {})
    assert isinstance(session, Session)
    assert session.spec.input == TensorSpec("in0", (1, 3, 320, 320), "float32")
    assert [(o.name, o.shape) for o in session.spec.outputs] == [("out0", (1, 84, 2100))]
    assert session.spec.layout == "NCHW" and session.spec.metadata["edgecv_format"] == "ncnn"
    session.close()
    session.close()  # closing twice is harmless
    with pytest.raises(BackendError, match="The ncnn session is closed"):
        session.run(np.zeros((1, 3, 320, 320), np.float32))
    # Through the model: ``with`` closes the session, and a closed model fails with one line.
    with edgecv.load(folder, backend="ncnn") as model:
        assert model(bus).labels
    with pytest.raises(BackendError) as info:
        model(bus)
    assert "The ncnn session is closed" in str(info.value) and "\n" not in str(info.value)


def test_vulkan_only_with_a_device(tmp_path_factory: pytest.TempPathFactory, bus: np.ndarray) -> None:
    import ncnn

    with stderr_silenced():
        devices = ncnn.get_gpu_count()
    folder = exported(tmp_path_factory, YOLO11)
    if devices == 0:
        with pytest.raises(BackendError) as info:
            edgecv.load(folder, backend="ncnn", vulkan=True)
        assert "vulkan=True but ncnn finds no Vulkan GPU" in str(info.value)
        assert "\n" not in str(info.value)
    else:
        model = edgecv.load(folder, backend="ncnn", vulkan=True, conf=0.25, iou=0.45)
        assert isinstance(model.session, NcnnSession)
        assert model.session.net.opt.use_vulkan_compute
        assert model(bus).labels == [label for label, _ in expected_from_sources(YOLO11)]

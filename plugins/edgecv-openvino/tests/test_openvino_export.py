"""``edgecv export --to openvino``: fp32, fp16 and INT8 IR folders that load back with their metadata,
Ultralytics' IR folders read the same way, and the output written only when complete."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import openvino as ov
import pytest
import yaml
from openvino_helpers import YOLO11, YOLOV8, export_stages, exported, model_path

import edgecv
from edgecv.backend import ConfigError, sha256_of
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv.testing.reference import asset, match_boxes
from edgecv_openvino import export, metadata

COCO80_TRAFFIC_LIGHT = 9


def _rt_edgecv(folder: Path) -> dict[str, str]:
    xml = next(folder.glob("*.xml"))
    return metadata.rt_section(ov.Core().read_model(str(xml)), metadata.EDGECV_SECTION)


def _boxes(detections: edgecv.Detections) -> list[tuple[str, list[float]]]:
    return [(d.label, list(d.box)) for d in detections]


def test_fp32_folder_holds_the_ir_and_its_metadata(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = exported(tmp_path_factory, YOLO11)
    stem = Path(YOLO11).stem
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.yaml", f"{stem}.bin", f"{stem}.xml"]
    recorded = _rt_edgecv(folder)
    assert recorded["edgecv_precision"] == "fp32" and recorded["edgecv_format"] == "openvino"
    assert recorded["edgecv_source"] == YOLO11
    assert recorded["edgecv_source_sha256"] == sha256_of(model_path(YOLO11))
    assert json.loads(recorded["edgecv_input"])["shape"] == [1, 3, 320, 320]
    assert json.loads(recorded["edgecv_versions"])["openvino"] == ov.__version__.split("-")[0]
    # metadata.yaml as Ultralytics writes it: names a map, imgsz a list; PyYAML reads it back.
    written = yaml.safe_load((folder / "metadata.yaml").read_text())
    assert written["imgsz"] == [320, 320] and written["names"][0] == "person" and written["task"] == "detect"
    assert written["edgecv_precision"] == "fp32"
    model = edgecv.load(folder)
    assert model.backend == "openvino" and model.spec.imgsz == (320, 320) and len(model.names) == 80
    assert export_stages(YOLO11, "fp32") == [("OpenVINO conversion", 1, 1)]


def test_fp16_stores_half_weights_and_detects_the_same(
    tmp_path_factory: pytest.TempPathFactory, bus_path: Path
) -> None:
    fp32, fp16 = exported(tmp_path_factory, YOLOV8), exported(tmp_path_factory, YOLOV8, "fp16")
    size = {f: next(f.glob("*.bin")).stat().st_size for f in (fp32, fp16)}
    assert 0.45 < size[fp16] / size[fp32] < 0.55, size
    assert _rt_edgecv(fp16)["edgecv_precision"] == "fp16"
    ours, theirs = edgecv.load(fp16)(bus_path), edgecv.load(fp32)(bus_path)
    assert [d.label for d in ours] == [d.label for d in theirs]
    # float16 weights, float32 arithmetic: measured under 0.5 px on bus.jpg.
    assert max(d for _, _, d in match_boxes(_boxes(theirs), _boxes(ours))) < 1.5


def test_int8_is_edgecv_onnx_qdq_run_as_int8(
    tmp_path_factory: pytest.TempPathFactory, bus_path: Path
) -> None:
    folder = exported(tmp_path_factory, YOLOV8, "int8")
    recorded = _rt_edgecv(folder)
    assert recorded["edgecv_precision"] == "int8"
    assert json.loads(recorded["edgecv_calibration"])["count"] == 8  # edgecv-onnx's calibration, kept
    assert recorded["edgecv_quantization"].startswith("static QDQ")
    assert recorded["edgecv_source"] == YOLOV8  # the float model, not the intermediate QDQ file
    # OpenVINO reads Q/DQ pairs as FakeQuantize, which its CPU plugin runs with INT8 kernels.
    xml = next(folder.glob("*.xml")).read_text()
    assert len(re.findall(r'type="FakeQuantize"', xml)) > 50
    stages = [stage for stage, _, _ in export_stages(YOLOV8, "int8")]
    assert "quantizing" in stages and stages[-1] == "OpenVINO conversion"  # edgecv-onnx's stages, then ours
    detections = edgecv.load(folder)(bus_path)
    reference = edgecv.load(model_path(YOLOV8), backend="onnx")(bus_path)
    assert sorted(d.label for d in detections if d.score > 0.5) == sorted(
        d.label for d in reference if d.score > 0.5
    )


def test_int8_without_calibration_images_is_one_line(tmp_path: Path) -> None:
    result = run_edgecv(
        "export", "-m", model_path(YOLO11), "--to", "openvino", "--precision", "int8", "-o", tmp_path / "o"
    )
    assert_one_line_error(result, "INT8 export needs calibration images")
    assert not (tmp_path / "o").exists()


def test_cli_export_into_a_busy_folder_makes_a_model_folder(tmp_path: Path, bus_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = run_edgecv(
        "export", "-m", model_path(YOLO11), "--to", "openvino", "--precision", "fp16", "-o", tmp_path
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / f"{Path(YOLO11).stem}_fp16_openvino_model"
    assert result.stdout.strip().endswith(f"-> {folder}")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    predicted = run_edgecv("predict", bus_path, "-m", folder, "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["detections"]


def test_output_that_is_a_file_is_refused(tmp_path: Path) -> None:
    output = tmp_path / "model.xml"
    output.write_text("keep me")
    with pytest.raises(ConfigError, match="is a file; OpenVINO export writes a folder"):
        export.export(model_path(YOLO11), output, {})
    assert output.read_text() == "keep me"


def test_export_from_and_to_non_utf8_paths(tmp_path: Path, bus_path: Path) -> None:
    odd = tmp_path / os.fsdecode(b"\xff\xfe")
    odd.mkdir()
    source = odd / os.fsdecode(b"m\xe9.onnx")
    shutil.copyfile(model_path(YOLO11), source)
    export.export(source, odd / os.fsdecode(b"out\xe9"), {})  # in process: the CLI would echo raw bytes
    loaded = edgecv.load(odd / os.fsdecode(b"out\xe9"))
    assert loaded.spec.metadata["edgecv_source"] == "m\ufffd.onnx"
    assert sorted(p.name for p in loaded.spec.path.iterdir()) == sorted(
        [f"{source.stem}.bin", f"{source.stem}.xml", "metadata.yaml"]
    )
    predicted = run_edgecv("predict", bus_path, "-m", odd / os.fsdecode(b"out\xe9"), "--json")
    assert predicted.returncode == 0, predicted.stderr


def test_install_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    work, target = tmp_path / "work", tmp_path / "model"
    work.mkdir()
    target.mkdir()
    names = ("m.bin", "m.xml", "metadata.yaml")
    for name in ("model.bin", "model.xml", "metadata.yaml"):
        (work / name).write_text(f"new {name.replace('model', 'm')}")
    victim = tmp_path / "victim"
    victim.write_text("not to be touched")
    for name in names:
        (target / f".{name}.part").symlink_to(victim)
        (target / f"{name}.tmp").symlink_to(victim)
    export._install(work, target, "m")
    assert victim.read_text() == "not to be touched"
    for name in names:
        assert (target / name).read_text() == f"new {name}"


def _ultralytics_like(source: Path, folder: Path, labels: list[str], yaml_text: str | None) -> Path:
    """An IR as Ultralytics' OpenVINO export writes it: converted from PyTorch (no ONNX metadata),
    class names in rt_info model_info/labels, and metadata.yaml beside it."""
    model = ov.Core().read_model(str(source))
    model.set_rt_info("YOLO", ["model_info", "model_type"])
    model.set_rt_info(labels, ["model_info", "labels"])
    folder.mkdir()
    xml = folder / "best.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    text = re.sub(r"<framework>.*?</framework>", "", xml.read_text(), flags=re.S)
    xml.write_text(text)
    if yaml_text is not None:
        (folder / "metadata.yaml").write_text(yaml_text)
    return folder


def test_ultralytics_ir_folder_names(tmp_path: Path) -> None:
    labels = [name.replace(" ", "_") for name in edgecv.load(model_path(YOLO11)).names]
    bare = _ultralytics_like(model_path(YOLO11), tmp_path / "bare", labels, None)
    model = edgecv.load(bare)
    assert "framework" not in (bare / "best.xml").read_text()
    assert model.names[COCO80_TRAFFIC_LIGHT] == "traffic_light"  # rt_info labels, as Ultralytics wrote them
    names = "\n".join(f"  {i}: {name.replace('_', ' ')}" for i, name in enumerate(labels))
    full = _ultralytics_like(
        model_path(YOLO11),
        tmp_path / "full",
        labels,
        "description: Ultralytics YOLO11n\nstride: 32\ntask: detect\nbatch: 1\n"
        f"imgsz:\n- 320\n- 320\nnames:\n{names}\n",
    )
    model = edgecv.load(full)
    assert model.names[COCO80_TRAFFIC_LIGHT] == "traffic light"  # metadata.yaml wins
    assert model.spec.metadata["stride"] == "32" and model.spec.imgsz == (320, 320)


def test_onnx_and_ir_give_identical_outputs(tmp_path_factory: pytest.TempPathFactory, bus_path: Path) -> None:
    from edgecv.backend import read_image

    onnx_model = edgecv.load(model_path(YOLO11), backend="openvino")
    ir_model = edgecv.load(exported(tmp_path_factory, YOLO11))
    tensor, _ = onnx_model.preprocess(read_image(bus_path))
    np.testing.assert_allclose(ir_model.infer(tensor)[0], onnx_model.infer(tensor)[0], atol=1e-3, rtol=1e-4)


def test_calibration_folder_is_checked_before_quantizing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(edgecv.EdgecvError):
        export.export(model_path(YOLO11), tmp_path / "o", {"precision": "int8", "calib": str(empty)})
    assert not (tmp_path / "o").exists()
    assert asset("coco128").is_dir()


def test_dynamic_input_becomes_a_static_ir(tmp_path: Path, bus_path: Path) -> None:
    import onnx

    graph = onnx.load(str(model_path(YOLO11)))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    for index, name in ((2, "height"), (3, "width")):
        dims[index].ClearField("dim_value")
        dims[index].dim_param = name
    source = tmp_path / "dynamic.onnx"
    onnx.save(graph, str(source))
    dynamic = edgecv.load(source, backend="openvino")
    assert dynamic.spec.input.shape == (1, 3, None, None) and dynamic.spec.imgsz == (320, 320)
    folder = export.export(source, tmp_path / "ir", {"imgsz": 320})
    static = edgecv.load(folder)
    assert static.spec.input.shape == (1, 3, 320, 320)
    assert json.loads(_rt_edgecv(folder)["edgecv_input"])["shape"] == [1, 3, 320, 320]
    ours, theirs = static(bus_path), dynamic(bus_path)
    assert [d.label for d in ours] == [d.label for d in theirs]
    assert max(d for _, _, d in match_boxes(_boxes(theirs), _boxes(ours))) < 1e-3

"""``edgecv export --to hailo`` on a fake Dataflow Compiler (``dfc_fakes``): what reaches the compiler
(hw_arch, the YOLOv8 head's end nodes, the model script, the NMS config, the letterboxed calibration
array), the HEF and its sidecar, the progress stages, and every failure as one ``error:`` line with
nothing half-written; a machine without the compiler gets where to get it (a real subprocess)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from dfc_fakes import DfcError, fake_dfc, install_dfc
from hailo_fakes import install_fake

import edgecv
from edgecv.backend import BackendError, ConfigError, ModelError
from edgecv.cli import cli
from edgecv.images import read_image
from edgecv.preprocess import letterbox
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv_hailo import export, nms_config
from edgecv_hailo.sidecar import read_sidecar, sidecar_path

YOLOV8_END_NODES = [
    f"/model.22/{branch}.{level}/{branch}.{level}.2/Conv" for level in range(3) for branch in ("cv2", "cv3")
]
"""Where Hailo's model zoo cuts yolov8n (its --end-node-names): box and class conv of each stride."""


@pytest.fixture
def dfc(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return install_dfc(monkeypatch)


@pytest.fixture
def calib(tmp_path: Path) -> Path:
    """Two small synthetic images of different shapes (each letterboxes differently)."""
    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, shape in (("a.png", (120, 200, 3)), ("b.png", (180, 90, 3))):
        assert cv2.imwrite(str(folder / name), rng.integers(0, 256, shape, dtype=np.uint8))
    return folder


@pytest.fixture
def yolo11(models: Path) -> Path:
    return models / "yolo11n_320_fp32_dequant.onnx"


def export_cli(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


class Recorder:
    """A ``Progress`` that keeps ``[stage, total, steps advanced]`` of every stage."""

    def __init__(self) -> None:
        self.stages: list[list[Any]] = []

    @contextlib.contextmanager
    def __call__(self, stage: str, total: int | None) -> Iterator[Any]:
        record: list[Any] = [stage, total, 0]
        self.stages.append(record)
        yield lambda steps: record.__setitem__(2, record[2] + steps)


# --- a YOLOv8 export, call by call ----------------------------------------------------------------


def test_yolov8n_compiles_with_its_head_cut_and_nms_on_chip(
    dfc: ModuleType, models: Path, calib: Path, tmp_path: Path
) -> None:
    source = models / "yolov8n_fp32_dequant.onnx"
    options = {"calib": calib, "nms_conf": 0.3, "nms_iou": 0.6, "nms_max_per_class": 50}
    target = export.export(source, tmp_path, options)

    assert target == tmp_path / "yolov8n_fp32_dequant.hef"
    fake = dfc.fake
    assert fake.methods == [
        "ClientRunner", "translate_onnx_model", "get_hn_dict", "load_model_script", "optimize", "compile"
    ]  # fmt: skip
    calls = dict(fake.calls)
    assert calls["ClientRunner"]["hw_arch"] == "hailo8l"  # the Raspberry Pi AI Kit's chip by default
    translate = calls["translate_onnx_model"]
    assert translate["model"] == str(source.absolute())
    assert translate["net_name"] == "yolov8n_fp32_dequant"
    assert translate["start_node_names"] == ["images"]
    assert translate["end_node_names"] == YOLOV8_END_NODES
    assert translate["net_input_shapes"] == {"images": [1, 3, 640, 640]}

    (config,) = fake.configs
    hn = {layer["original_names"][0]: key for key, layer in fake_hn(source).items()}
    assert config["classes"] == 80 and config["image_dims"] == [640, 640]
    assert config["regression_length"] == 16  # the DFL bins: 64 box channels
    assert config["nms_scores_th"] == 0.3 and config["nms_iou_th"] == 0.6
    assert config["max_proposals_per_class"] == 50
    assert [(d["stride"], d["reg_layer"], d["cls_layer"]) for d in config["bbox_decoders"]] == [
        (stride, hn[YOLOV8_END_NODES[2 * i]], hn[YOLOV8_END_NODES[2 * i + 1]])
        for i, stride in enumerate((8, 16, 32))
    ]
    (script,) = fake.scripts
    lines = script.splitlines()
    assert lines[0] == "normalization1 = normalization([0.0, 0.0, 0.0], [255.0, 255.0, 255.0])"
    assert "model_optimization_config(calibration, calibset_size=2)" in lines
    class_layers = [d["cls_layer"].rsplit("/", 1)[1] for d in config["bbox_decoders"]]
    assert [line for line in lines if "change_output_activation" in line] == [
        f"change_output_activation({layer}, sigmoid)" for layer in class_layers
    ]
    nms_line = f'nms_postprocess("{fake.cwd[0]}/nms_config.json", meta_arch=yolov8, engine=cpu)'
    assert lines[-1] == nms_line

    # The calibration array is what the HEF will be fed: letterboxed (centred, 114) RGB uint8 pixels.
    (array,) = fake.calibrations
    assert array.shape == (2, 640, 640, 3) and array.dtype == np.uint8
    files = sorted(calib.iterdir())
    expected = [letterbox(read_image(file), (640, 640))[0][..., ::-1] for file in files]
    np.testing.assert_array_equal(array, np.stack(expected))

    # The compiler ran in a folder of its own (its logs go there), removed afterwards.
    assert all(cwd != os.getcwd() for cwd in fake.cwd) and not Path(fake.cwd[0]).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib", target.name, sidecar_path(target).name]


def fake_hn(source: Path) -> dict[str, Any]:
    """The HN the fake compiler makes of ``source`` cut at the YOLOv8 end nodes."""
    runner = fake_dfc().ClientRunner(hw_arch="hailo8l")
    runner.translate_onnx_model(str(source), "yolov8n_fp32_dequant", end_node_names=YOLOV8_END_NODES)
    layers: dict[str, Any] = runner.get_hn_dict()["layers"]
    return {key: layer for key, layer in layers.items() if layer["type"] == "conv"}


def test_the_sidecar_records_the_source_and_how_the_hef_was_made(
    dfc: ModuleType, yolo11: Path, calib: Path, tmp_path: Path
) -> None:
    target = export.export(yolo11, tmp_path / "y.hef", {"calib": calib, "hw_arch": "hailo8"})
    metadata = read_sidecar(target)  # checks the HEF's SHA-256 too
    assert metadata["hw_arch"] == "hailo8" and dict(dfc.fake.calls)["ClientRunner"]["hw_arch"] == "hailo8"
    assert metadata["nms"] == "by_class" and metadata["precision"] == "int8"
    assert metadata["source_sha256"] == hashlib.sha256(yolo11.read_bytes()).hexdigest()
    assert metadata["edgecv"] == edgecv.__version__ and metadata["dataflow_compiler"] == "3.31.0"
    assert metadata["imgsz"] == "[320, 320]" and metadata["task"] == "detect" and metadata["stride"] == "32"
    assert metadata["names"].startswith("{0: 'person', 1: 'bicycle'")
    assert json.loads(metadata["nms_config"]) == {
        "scores_th": 0.2, "iou_th": 0.45, "max_per_class": 100, "engine": "cpu"
    }  # fmt: skip
    assert json.loads(metadata["calibration"])["count"] == 2


def test_the_progress_shows_every_stage(dfc: ModuleType, yolo11: Path, calib: Path, tmp_path: Path) -> None:
    progress = Recorder()
    export.export(yolo11, tmp_path, {"calib": calib, "progress": progress})
    assert progress.stages == [
        ["calibration images", 2, 2],
        ["translate", 1, 1],
        ["optimize (INT8, 2 images)", 1, 1],
        ["compile for hailo8l", 1, 1],
    ]


def test_an_exported_hef_predicts_what_the_onnx_predicts(
    monkeypatch: pytest.MonkeyPatch, dfc: ModuleType, models: Path, bus_path: Path, tmp_path: Path
) -> None:
    """Export, then run the HEF on the fake HailoRT: the NMS the sidecar and config set up is the one
    the device runs, so the boxes are the ONNX model's (the fake device computes with it)."""
    source = models / "yolov8n_fp32_dequant.onnx"
    folder = tmp_path / "calib"
    folder.mkdir()
    shutil.copy(bus_path, folder)
    target = export.export(source, tmp_path / "bus.hef", {"calib": folder})
    install_fake(monkeypatch, arch="HAILO8L")
    image = read_image(bus_path)
    with edgecv.load(target) as hef, edgecv.load(source, backend="onnx") as onnx_model:
        assert hef.backend == "hailo" and hef.spec.names == onnx_model.spec.names
        got, want = hef.predict(image), onnx_model.predict(image)
    assert len(got) == len(want) > 0
    np.testing.assert_array_equal(got.class_ids, want.class_ids)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1.0)


# --- graphs without a YOLOv8 head ------------------------------------------------------------------


def test_a_yolox_graph_compiles_whole_without_nms_and_says_so(
    dfc: ModuleType, models: Path, calib: Path, tmp_path: Path
) -> None:
    with pytest.warns(UserWarning, match=r"no on-chip NMS in the HEF \(its output is decoded as yolox"):
        target = export.export(models / "yolox_nano.onnx", tmp_path, {"calib": calib})
    translate = dict(dfc.fake.calls)["translate_onnx_model"]
    assert translate["end_node_names"] is None and translate["net_input_shapes"] == {
        "images": [1, 3, 416, 416]
    }
    assert "get_hn_dict" not in dfc.fake.methods and dfc.fake.configs == []
    # YOLOX takes raw 0..255 pixels: no normalization in the HEF; BGR, letterboxed to the top left.
    assert dfc.fake.scripts == ["model_optimization_config(calibration, calibset_size=2)\n"]
    files = sorted(calib.iterdir())
    expected = [letterbox(read_image(file), (416, 416), "topleft")[0] for file in files]
    np.testing.assert_array_equal(dfc.fake.calibrations[0], np.stack(expected))
    assert read_sidecar(target)["nms"] == "none" and "nms_config" not in read_sidecar(target)


def test_find_head_reads_the_structure_not_the_names(yolo11: Path, models: Path) -> None:
    import onnx

    model = onnx.load(str(yolo11))
    head, reason = nms_config.find_head(model, (320, 320), 80, "yolov8")
    assert head is not None and reason == ""
    assert [level.stride for level in head.levels] == [8, 16, 32]
    assert head.end_nodes[:2] == ["/model.23/cv2.0/cv2.0.2/Conv", "/model.23/cv3.0/cv3.0.2/Conv"]  # YOLO11
    assert nms_config.find_head(model, (320, 320), 64, "yolov8") == (
        None, "with 64 classes its box and class convolutions cannot be told apart"
    )  # fmt: skip
    head, reason = nms_config.find_head(onnx.load(str(models / "yolox_nano.onnx")), (416, 416), 80, "yolov8")
    assert head is None and "at stride 8 it ends in convolutions of 80, 4, 1 channels" in reason


def test_hn_layers_takes_the_conv_a_node_became_with_or_without_the_network_name(
    monkeypatch: pytest.MonkeyPatch, yolo11: Path
) -> None:
    dfc = install_dfc(monkeypatch)
    dfc.fake.short_keys = True
    runner = dfc.ClientRunner(hw_arch="hailo8l")
    runner.translate_onnx_model(str(yolo11), "net", end_node_names=["/model.23/cv3.2/cv3.2.2/Conv"])
    hn = runner.get_hn_dict()
    made = [
        key
        for key, layer in hn["layers"].items()
        if "/model.23/cv3.2/cv3.2.2/Conv" in layer["original_names"]
    ]
    assert sorted(hn["layers"][key]["type"] for key in made) == ["conv", "output_layer"]
    (conv,) = [key for key in made if hn["layers"][key]["type"] == "conv"]
    assert "/" not in conv  # the key without the network name, as some compiler versions give it
    assert nms_config.hn_layers(hn, ["/model.23/cv3.2/cv3.2.2/Conv"]) == {
        "/model.23/cv3.2/cv3.2.2/Conv": f"net/{conv}"
    }
    with pytest.raises(BackendError, match=r"no layer made from /model\.23/cv2\.0/cv2\.0\.2/Conv"):
        nms_config.hn_layers(hn, ["/model.23/cv2.0/cv2.0.2/Conv"])


# --- failures: one line, in a useful order, nothing half-written -----------------------------------


def test_a_compile_failure_leaves_the_previous_hef_as_it_was(
    dfc: ModuleType, yolo11: Path, calib: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "model.hef"
    target.parent.mkdir()
    target.write_bytes(b"the previous HEF")
    dfc.fake.fail["compile"] = DfcError("Mapping failed: 8 contexts needed, 4 available")
    line = one_error_line(export_cli("--model", yolo11, "--to", "hailo", "--calib", calib, "-o", target))
    assert line == (
        "error: The Dataflow Compiler could not compile the network for hailo8l: Mapping failed: 8 contexts "
        "needed, 4 available. Its log above has the details; --debug shows the traceback."
    )
    assert target.read_bytes() == b"the previous HEF"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.hef"]  # no partial file, no sidecar


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--hw-arch", "hailo9"], "Unknown --hw-arch 'hailo9'. Pass --hw-arch hailo8l, hailo8,"),
        (["--precision", "fp16"], "Hailo chips run 8-bit networks: --precision fp16 has no HEF form"),
        (["--precision", "fp32"], "Hailo chips run 8-bit networks: --precision fp32 has no HEF form"),
        (["--option", "nms_conf=1.5"], "Hailo export nms_conf must be a number above 0 and up to 1"),
        (["--option", "nms_engine=gpu"], "Unknown nms_engine 'gpu'. Pass nms_engine=cpu or nn_core."),
        (["--option", "nms_max_per_class=5000"], "nms_max_per_class must be at most 1000, got 5000"),
        (["--option", "nms_threshold=0.5"], "Unknown Hailo export option(s): nms_threshold"),
        (["--calib-method", "entropy"], "Unknown calibration method 'entropy' for Hailo export"),
    ],
)
def test_option_mistakes_are_one_line_before_the_compiler_runs(
    args: list[str], said: str, dfc: ModuleType, yolo11: Path, calib: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out.hef"
    line = one_error_line(
        export_cli("--model", yolo11, "--to", "hailo", "--calib", calib, *args, "-o", target)
    )
    assert said in line
    assert dfc.fake.calls == [] and not target.exists()


def test_the_cheap_mistakes_come_before_the_missing_compiler(
    monkeypatch: pytest.MonkeyPatch, yolo11: Path, models: Path, calib: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "hailo_sdk_client", None)  # no compiler on this machine
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["--to", "hailo", "-o", tmp_path / "out.hef"]
    assert "INT8 export needs calibration images" in one_error_line(export_cli("--model", yolo11, *base))
    line = one_error_line(export_cli("--model", yolo11, *base, "--calib", empty))
    assert f"Calibration folder {empty} holds no images" in line
    line = one_error_line(export_cli("--model", yolo11, *base, "--calib", calib, "--imgsz", "640"))
    assert "Dataflow Compiler" not in line  # a static 320 model asked for 640: the model's problem first
    line = one_error_line(export_cli("--model", models / "yolov8n_int8.onnx", *base, "--calib", calib))
    assert "yolov8n_int8.onnx is already quantized. Export from the float32 model" in line
    bad = tmp_path / "out.engine"
    line = one_error_line(export_cli("--model", yolo11, "--to", "hailo", "--calib", calib, "-o", bad))
    assert "out.engine is not a HEF file name. Pass -o" in line
    # All of that right: now the missing compiler.
    line = one_error_line(export_cli("--model", yolo11, *base, "--calib", calib))
    assert "needs the Hailo Dataflow Compiler" in line or "x86_64 Linux only" in line


def test_without_the_compiler_the_export_says_where_to_get_it(
    yolo11: Path, calib: Path, tmp_path: Path
) -> None:
    # A real `edgecv` process on an x86_64 Linux machine without hailo_sdk_client (made sure of,
    # should the machine running the tests have it).
    code = (
        "import platform, sys; sys.modules['hailo_sdk_client'] = None; "
        "platform.system = lambda: 'Linux'; platform.machine = lambda: 'x86_64'; "
        "from edgecv.cli import main; main()"
    )
    target = tmp_path / "out.hef"
    result = run_edgecv(
        "export", "--model", yolo11, "--to", "hailo", "--calib", calib, "-o", target, code=code
    )
    assert_one_line_error(
        result,
        "Exporting to Hailo needs the Hailo Dataflow Compiler (hailo_sdk_client), which is not installed.",
        "It is not on PyPI: download its wheel from Hailo's Developer Zone "
        "(https://hailo.ai/developer-zone/, a free account)",
        "x86_64 Linux",
    )
    assert not target.exists()


def test_on_arm_it_says_to_compile_elsewhere_and_copy_the_hef(
    monkeypatch: pytest.MonkeyPatch, yolo11: Path, calib: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "hailo_sdk_client", None)
    monkeypatch.setattr("platform.system", lambda: "Linux")
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    line = one_error_line(export_cli("--model", yolo11, "--to", "hailo", "--calib", calib, "-o", tmp_path))
    assert line == (
        "error: The Hailo Dataflow Compiler runs on x86_64 Linux only, and this machine is Linux aarch64. "
        "Export on an x86_64 Linux machine with the compiler, then copy the .hef and its .hef.json here "
        "(edgecv runs HEFs on any machine with HailoRT)."
    )


def test_an_arch_this_compiler_does_not_know_is_its_error_in_one_line(
    dfc: ModuleType, yolo11: Path, calib: Path, tmp_path: Path
) -> None:
    args = ["--model", yolo11, "--to", "hailo", "--calib", calib, "--hw-arch", "hailo15h", "-o", tmp_path]
    line = one_error_line(export_cli(*args))
    assert "The Dataflow Compiler could not start for hailo15h: Unsupported hw_arch 'hailo15h'" in line


def test_hw_arch_reaches_the_hailo_exporter_only(
    dfc: ModuleType, yolo11: Path, calib: Path, tmp_path: Path
) -> None:
    target = tmp_path / "y.hef"
    args = ["--model", yolo11, "--calib", calib, "--hw-arch", "hailo8"]
    result = export_cli(*args, "--to", "hailo", "-o", target)
    assert result.exit_code == 0, result.output
    assert f"-> {target}" in result.stdout
    assert read_sidecar(target)["hw_arch"] == "hailo8"
    assert "Unknown ONNX export option(s): hw_arch" in one_error_line(
        export_cli(*args, "--to", "onnx", "-o", tmp_path / "y.onnx")
    )


def test_the_calibration_array_is_bounded() -> None:
    export.check_calibration_memory(1747, (640, 640))  # 2.0 GiB: the ceiling
    with pytest.raises(ConfigError, match=r"1748 calibration images at 640x640 take 2.0 GiB") as info:
        export.check_calibration_memory(1748, (640, 640))
    assert info.value.hint.startswith("Pass --calib-size 1747 or fewer")


def test_the_fake_compiler_fails_like_the_real_one_on_misuse(yolo11: Path) -> None:
    dfc = fake_dfc()
    with pytest.raises(DfcError, match="Unsupported hw_arch"):
        dfc.ClientRunner(hw_arch="hailo9")
    runner = dfc.ClientRunner(hw_arch="hailo8l")
    for call in (runner.compile, lambda: runner.optimize(np.zeros((1, 320, 320, 3), np.uint8))):
        with pytest.raises(DfcError):
            call()
    with pytest.raises(DfcError, match="End node /nowhere was not found"):
        runner.translate_onnx_model(str(yolo11), "m", end_node_names=["/nowhere"])
    runner = dfc.ClientRunner(hw_arch="hailo8l")
    runner.translate_onnx_model(str(yolo11), "m")
    with pytest.raises(DfcError, match="before it is compiled"):
        runner.compile()
    with pytest.raises(DfcError, match=r"is not \(N, 320, 320, 3\)"):
        runner.optimize(np.zeros((1, 3, 320, 320), np.uint8))
    with pytest.raises(DfcError, match="Unknown model script command"):
        runner.load_model_script("quantize_everything()\n")


def test_a_non_onnx_source_is_refused(dfc: ModuleType, tmp_path: Path, calib: Path) -> None:
    source = tmp_path / "model.tflite"
    source.write_bytes(b"TFL3")
    with pytest.raises(ModelError, match=r"is not an \.onnx file"):
        export.export(source, tmp_path, {"calib": calib})
    assert dfc.fake.calls == []


def test_without_the_export_extra_it_names_it(
    monkeypatch: pytest.MonkeyPatch, dfc: ModuleType, yolo11: Path, calib: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "edgecv_onnx", None)  # edgecv-onnx not installed
    with pytest.raises(
        BackendError, match="Exporting to Hailo needs edgecv_onnx, not installed here"
    ) as info:
        export.export(yolo11, tmp_path, {"calib": calib})
    assert "pip install --find-links dist 'edgecv-hailo[export]'" in info.value.hint
    assert dfc.fake.calls == []

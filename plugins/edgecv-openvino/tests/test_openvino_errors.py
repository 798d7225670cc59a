"""Bad options and bad files: one ``error:`` line each, through the CLI as users see them, and never
a crash (non-UTF-8 names, truncated graphs and weights run in a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from openvino_helpers import YOLO11, exported, model_path

import edgecv
from edgecv.backend import ConfigError, ModelError
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv_openvino.settings import Settings


@pytest.mark.parametrize(
    ("option", "fragments"),
    [
        ("device=NPU", ["OpenVINO device 'NPU' is not present", "OpenVINO sees: CPU"]),
        ("device=gpu.1", ["OpenVINO device 'GPU.1' is not present"]),
        ("precision=f64", ["OpenVINO option precision must be one of f32, bf16, f16, got 'f64'"]),
        ("hint=fast", ["OpenVINO option hint must be one of latency, throughput"]),
        ("threads=0", ["threads"]),
        ("colour=red", ["Unknown OpenVINO option(s): colour", "Known options: cache_dir, device"]),
    ],
)
def test_bad_option_is_one_line(bus_path: Path, option: str, fragments: list[str]) -> None:
    result = run_edgecv("predict", bus_path, "-m", model_path(YOLO11), "--backend", "openvino", "-o", option)
    assert_one_line_error(result, *fragments)


def test_cache_dir_that_cannot_be_made_is_a_config_error(tmp_path: Path, models: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"Cannot use .* as the OpenVINO cache_dir"):
        edgecv.load(models / YOLO11, backend="openvino", cache_dir=str(blocker / "cache"))


def test_compiled_models_are_cached_in_edgecv_cache_dir_when_asked(tmp_path: Path, models: Path) -> None:
    os.environ["EDGECV_CACHE_DIR"] = str(tmp_path)  # the autouse fixture restores it
    edgecv.load(models / YOLO11, backend="openvino")
    assert not (tmp_path / "openvino").exists(), "a CPU load caches only when asked"
    named = tmp_path / "named"
    edgecv.load(models / YOLO11, backend="openvino", cache_dir=str(named))
    assert list(named.iterdir()), "OpenVINO wrote no compiled model to the cache"


def test_a_device_that_compiles_slowly_caches_by_default(tmp_path: Path) -> None:
    os.environ["EDGECV_CACHE_DIR"] = str(tmp_path)
    assert Settings.parse({"device": "GPU"}).cache_dir == tmp_path / "openvino"
    assert Settings.parse({"device": "GPU", "cache_dir": False}).cache_dir is None
    assert Settings.parse({}).cache_dir is None


@pytest.fixture
def ir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported(tmp_path_factory, YOLO11)


def _copy(ir: Path, target: Path, *, keep: tuple[str, ...] = (".xml", ".bin", ".yaml")) -> Path:
    target.mkdir(parents=True)
    for file in ir.iterdir():
        if file.suffix in keep:
            shutil.copyfile(file, target / file.name)
    return target


def _cut(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def test_xml_without_its_bin(ir: Path, tmp_path: Path, bus_path: Path) -> None:
    folder = _copy(ir, tmp_path / "m", keep=(".xml",))
    xml = next(folder.glob("*.xml"))
    assert_one_line_error(run_edgecv("predict", bus_path, "-m", xml), f"has no weights file {xml.stem}.bin")
    result = run_edgecv("predict", bus_path, "-m", folder, "--backend", "openvino")
    assert_one_line_error(result, "holds no OpenVINO IR models")


def test_folder_with_two_models_asks_for_the_xml(ir: Path, tmp_path: Path) -> None:
    folder = _copy(ir, tmp_path / "m")
    for file in list(folder.glob("yolo*")):
        shutil.copyfile(file, folder / f"other{file.suffix}")
    with pytest.raises(ModelError, match=r"holds 2 OpenVINO IR models .*Pass the \.xml"):
        edgecv.load(folder, backend="openvino")


@pytest.mark.parametrize(("suffix", "reason"), [(".xml", "offset"), (".bin", "Incorrect weights")])
def test_truncated_ir_file(ir: Path, tmp_path: Path, bus_path: Path, suffix: str, reason: str) -> None:
    folder = _copy(ir, tmp_path / "m")
    _cut(next(folder.glob(f"*{suffix}")))
    # Nothing OpenVINO's frontends print on the way reaches the user: the one line is all of stderr.
    assert_one_line_error(run_edgecv("predict", bus_path, "-m", folder), "OpenVINO cannot load", reason)


def test_not_a_model(tmp_path: Path, bus_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"\x00garbage" * 100)
    result = run_edgecv("predict", bus_path, "-m", fake, "--backend", "openvino")
    assert_one_line_error(result, "OpenVINO cannot load model.onnx: none of its readers", "download it again")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(model_path(YOLO11).read_bytes()[:1000])
    result = run_edgecv("predict", bus_path, "-m", truncated, "--backend", "openvino")
    # The reason is OpenVINO's, worded differently by version ("Model can't be parsed" in 2026.4).
    assert_one_line_error(result, "OpenVINO cannot load truncated.onnx: ", "download it again")


@pytest.mark.parametrize("form", ["ir", "onnx"])
def test_model_whose_path_is_not_utf8(ir: Path, tmp_path: Path, bus_path: Path, form: str) -> None:
    folder = tmp_path / os.fsdecode(b"caf\xe9-\xff")
    if form == "ir":
        _copy(ir, folder)
        model = folder
    else:
        folder.mkdir()
        model = folder / os.fsdecode(b"m\xfe.onnx")
        shutil.copyfile(model_path(YOLO11), model)
    # A subprocess: a crash in the runtime must fail this test, not end pytest.
    result = run_edgecv("predict", bus_path, "-m", model, "--backend", "openvino", "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["detections"]) > 0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("names: &a [person]\nother: *a\n", "aliases are not allowed"),
        ("names: [person\n", "Cannot read"),
        ("- just\n- a list\n", "not a mapping of keys"),
    ],
)
def test_bad_metadata_yaml(ir: Path, tmp_path: Path, bus_path: Path, text: str, fragment: str) -> None:
    folder = _copy(ir, tmp_path / "m")
    (folder / "metadata.yaml").write_text(text)
    assert_one_line_error(run_edgecv("predict", bus_path, "-m", folder), "metadata.yaml", fragment)


def test_oversized_metadata_yaml_is_refused(ir: Path, tmp_path: Path) -> None:
    folder = _copy(ir, tmp_path / "m")
    (folder / "metadata.yaml").write_text("description: " + "x" * (1 << 20) + "\n")
    with pytest.raises(ModelError, match="larger than 1 MiB"):
        edgecv.load(folder)

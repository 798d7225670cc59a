"""Hostile paths: names that are not UTF-8, planted and broken symbolic links, outputs nobody can write.

Every run is a subprocess: OpenCV crashed (SIGSEGV) on names that are not UTF-8, and a crash must
fail the test rather than take pytest down.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_helpers import ASSETS, BUS, MODEL, assert_one_line_error, edgecv

# b"\xff\xfe" is not UTF-8: Python holds such a name with surrogate escapes.
UNDECODABLE = os.fsdecode(b"\xff\xfe")


def test_predict_saves_images_with_names_that_are_not_utf8(tmp_path: Path) -> None:
    odd = tmp_path / f"{UNDECODABLE}.jpg"
    shutil.copyfile(BUS, odd)
    out = tmp_path / f"out{UNDECODABLE}"
    result = edgecv("predict", odd, BUS, "--model", MODEL, "--json", "--save", out)
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert len(result.stdout.splitlines()) == 2  # the batch went on past the odd name
    for name in (odd.name, BUS.name):
        saved = cv2.imdecode(np.fromfile(out / name, dtype=np.uint8), cv2.IMREAD_COLOR)
        assert saved is not None and saved.shape == (1080, 810, 3)


def test_model_with_a_name_that_is_not_utf8_loads(tmp_path: Path) -> None:
    odd = tmp_path / f"{UNDECODABLE}.onnx"
    shutil.copyfile(MODEL, odd)
    result = edgecv("predict", BUS, "--model", odd, "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["detections"]) == 5


def test_predict_save_replaces_a_planted_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "outside" / "victim.jpg"
    victim.parent.mkdir()
    victim.write_bytes(b"not to be touched")
    out = tmp_path / "out"
    out.mkdir()
    (out / BUS.name).symlink_to(victim)
    result = edgecv("predict", BUS, "--model", MODEL, "--save", out)
    assert result.returncode == 0, result.stderr
    assert victim.read_bytes() == b"not to be touched"
    assert not (out / BUS.name).is_symlink()
    assert cv2.imread(str(out / BUS.name)).shape == (1080, 810, 3)
    assert sorted(p.name for p in out.iterdir()) == [BUS.name]  # no temporary file left behind


def test_broken_link_in_a_folder_is_reported_and_the_rest_predicted(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copyfile(BUS, folder / "a.jpg")
    (folder / "b.jpg").symlink_to(tmp_path / "gone.jpg")
    shutil.copyfile(ASSETS / "images" / "zidane.jpg", folder / "c.jpg")
    result = edgecv("predict", folder, "--model", MODEL, "--json")
    assert result.returncode == 1  # as for any unreadable image among good ones
    assert [Path(json.loads(line)["source"]).name for line in result.stdout.splitlines()] == [
        "a.jpg",
        "c.jpg",
    ]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ")
    assert "b.jpg is a broken symbolic link" in errors[0], errors[0]


def test_val_save_json_replaces_a_planted_link(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    shutil.copyfile(BUS, data / "images" / "bus.jpg")
    (data / "labels" / "bus.txt").write_text("5 0.5 0.45 0.97 0.47\n0 0.16 0.6 0.2 0.47\n")
    victim = tmp_path / "victim.json"
    victim.write_text("not to be touched")
    link = tmp_path / "out" / "detections.json"
    link.parent.mkdir()
    link.symlink_to(victim)
    result = edgecv("val", "--model", MODEL, "--data", data, "--save-json", link)
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "not to be touched"
    assert not link.is_symlink()
    assert {entry["category_id"] for entry in json.loads(link.read_text())} >= {1, 6}  # person, bus


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_export_to_an_unwritable_place_fails_before_exporting(precision: str) -> None:
    # An int8 export would fail at once on the missing --calib: the output is checked before that.
    result = edgecv(
        "export", "--model", MODEL, "--to", "onnx", "--precision", precision, "-o", "/proc/x.onnx"
    )
    line = assert_one_line_error(result, "Cannot write -o /proc/x.onnx", "/proc does not take new files")
    assert "unexpected" not in line

"""Hostile paths: a model folder whose name is not UTF-8, a link planted at the export's part name."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from ncnn_helpers import YOLO11, exported

from edgecv.testing.cli import run_edgecv
from edgecv_ncnn import export


def test_model_folder_whose_name_is_not_utf8(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, bus_path: Path
) -> None:
    folder = tmp_path / os.fsdecode(b"\xff\xfe")
    shutil.copytree(exported(tmp_path_factory, YOLO11), folder)
    # A subprocess: a crash in the runtime must fail this test, not end pytest.
    result = run_edgecv("predict", bus_path, "--model", folder, "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["detections"]) > 0


def test_export_never_writes_through_a_link_at_a_part_name(tmp_path: Path) -> None:
    work, target = tmp_path / "work", tmp_path / "model"
    work.mkdir()
    target.mkdir()
    for name in (export.BIN, export.PARAM, "metadata.yaml"):
        (work / name).write_text(f"new {name}")
    victim = tmp_path / "victim"
    victim.write_text("not to be touched")
    for name in (export.BIN, export.PARAM, "metadata.yaml"):  # the part names the export once used
        (target / f".{name}.part").symlink_to(victim)
    export._install(work, target)
    assert victim.read_text() == "not to be touched"
    for name in (export.BIN, export.PARAM, "metadata.yaml"):
        assert (target / name).read_text() == f"new {name}"
    assert not [p for p in target.iterdir() if p.suffix == ".part" and not p.is_symlink()]

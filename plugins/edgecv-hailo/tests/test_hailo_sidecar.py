"""The sidecar beside a HEF: written atomically, read as untrusted input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecv.backend import ModelError
from edgecv_hailo.sidecar import MAX_SIDECAR_BYTES, read_sidecar, sidecar_path, write_sidecar


@pytest.fixture
def hef(tmp_path: Path) -> Path:
    path = tmp_path / "yolov8n.hef"
    path.write_bytes(b"compiled network")
    return path


def test_round_trip(hef: Path) -> None:
    write_sidecar(hef, {"names": "['person', 'bus']", "imgsz": "[640, 640]"})
    assert read_sidecar(hef) == {"names": "['person', 'bus']", "imgsz": "[640, 640]"}
    assert sidecar_path(hef).name == "yolov8n.hef.json"


def test_no_sidecar_is_no_metadata(hef: Path) -> None:
    assert read_sidecar(hef) == {}


def test_a_replaced_hef_is_refused(hef: Path) -> None:
    write_sidecar(hef, {"names": "['person']"})
    hef.write_bytes(b"another network")
    with pytest.raises(ModelError, match="written for another HEF"):
        read_sidecar(hef)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not an edgecv HEF sidecar"),
        (json.dumps({"format": "edgecv-hailo-hef", "format_version": 99}).encode(), "format version 99"),
        (
            json.dumps(
                {"format": "edgecv-hailo-hef", "format_version": 1, "metadata": {"names": 3}}
            ).encode(),
            "must map strings to strings",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b" " * (MAX_SIDECAR_BYTES + 1), "larger than"),
    ],
)
def test_hostile_sidecars_are_one_clear_error(hef: Path, content: bytes, message: str) -> None:
    sidecar_path(hef).write_bytes(content)
    with pytest.raises(ModelError, match=message):
        read_sidecar(hef)

"""The metadata.yaml reader/writer (a YAML subset, no PyYAML) on real Ultralytics files and edge cases."""

from __future__ import annotations

import math
from typing import Any

import pytest

from edgecv.backend import imgsz_from_metadata
from edgecv.names import COCO80
from edgecv.spec import names_from_metadata
from edgecv.testing.reference import asset
from edgecv_ncnn.metadata import MetadataError, dump, flatten, parse


@pytest.mark.parametrize(
    ("file", "version", "args"),
    [
        ("yolov8n_tflite_metadata.yaml", "8.1.42", None),
        (
            "yolo11n_tflite_metadata.yaml",
            "8.3.227",
            {"batch": 1, "fraction": 1.0, "half": False, "int8": True, "nms": False},
        ),
    ],
)
def test_ultralytics_metadata_files(file: str, version: str, args: dict[str, Any] | None) -> None:
    data = parse(asset("models", file).read_text())
    assert data["version"] == version  # plain "8.1.42" stays a string, not a float
    assert data["date"].startswith("20")  # quoted
    assert data["imgsz"] == [640, 640] and data["stride"] == 32 and data["task"] == "detect"
    assert data["license"] == "AGPL-3.0 License (https://ultralytics.com/license)"
    assert data.get("args") == args
    flat = flatten(data)
    assert names_from_metadata(flat) == COCO80
    assert imgsz_from_metadata(flat) == (640, 640)


def test_round_trip_of_awkward_values() -> None:
    data: dict[str, Any] = {
        "plain": "traffic light",
        "colon": "a: b",
        "hash": "x #y",
        "quote": 'it\'s "quoted"',
        "digits": "0123",
        "version": "8.1.42",
        "boolish": "yes",
        "nullish": "null",
        "empty": "",
        "unicode": "Straße ✓",
        "newline": "two\nlines",
        "leading": "- dash",
        "int": -7,
        "float": 1e-05,
        "scale": 1 / 255,
        "inf": math.inf,
        "true": True,
        "none": None,
        "list": [1, "two", 3.5, "a, b"],
        "names": {0: "person", 1: "traffic light", 2: "it's"},
        "mixed": {"shape": [1, 3, 640, 640], "nested": {"deep": 1}},
    }
    back = parse(dump(data, header="test\nheader"))
    expected = dict(data, mixed={"shape": [1, 3, 640, 640], "nested": "{'deep': 1}"})
    assert back == expected


def test_block_styles_comments_and_continuations() -> None:
    text = (
        "---\n# comment\ndescription: a long plain value that PyYAML folded\n  onto the next line\n"
        "notes: |\n  first\n  second\nkpt: [17, 3]  # trailing comment\n'quoted key': 1\n"
        "empty:\nlist:\n  - 1\n  - 2\n...\n"
    )
    assert parse(text) == {
        "description": "a long plain value that PyYAML folded onto the next line",
        "notes": "first\nsecond",
        "kpt": [17, 3],
        "quoted key": 1,
        "empty": None,
        "list": [1, 2],
    }


def test_unsupported_structure_is_kept_raw_unless_edgecv_needs_it() -> None:
    assert parse("other:\n  a:\n    b: 1\n")["other"] == "a:\nb: 1"
    with pytest.raises(MetadataError, match=r"line 1 \(names\)"):
        parse("names:\n  0:\n    deep: person\n")
    with pytest.raises(MetadataError, match="expected a mapping"):
        parse("- 1\n- 2\n")


def test_flatten_matches_what_the_core_reads() -> None:
    flat = flatten(
        {"names": {0: "a", 1: "b"}, "imgsz": [320, 320], "edgecv_input": {"scale": 0.5}, "x": None}
    )
    assert flat == {"names": "{0: 'a', 1: 'b'}", "imgsz": "[320, 320]", "edgecv_input": '{"scale": 0.5}'}

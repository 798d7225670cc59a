"""Values users give are checked once, with the same message from the CLI and from Python.

Each bad value below was accepted silently before (issue 12, item 12): ``--conf -1`` / ``2`` /
``nan``, ``--iou -1``, ``--max-det 0``, ``--classes 999``, ``--threads -3``, an empty ``--names``
file, ``model(img, conf=-5)``, an unknown keyword in a model call, and ``--event-classes persn``
(a typo that made no event, ever).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgecv
from edgecv.errors import ConfigError
from edgecv.events.policy import EventPolicy, EventSelector
from edgecv.names import COCO80
from edgecv.postprocess import PostprocessOptions
from edgecv.testing.cli import assert_one_line_error, run_edgecv

MODEL = "yolo11n_320_fp32_dequant.onnx"


@pytest.fixture(scope="module")
def model(models: Path) -> edgecv.Model:
    return edgecv.load(models / MODEL)


@pytest.fixture
def empty_names(tmp_path: Path) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("\n  \n")
    return path


# --- Python: edgecv.load and model(...) -------------------------------------------------------------

BAD_LOAD = [
    ({"conf": -1}, "conf (the minimum score) must be a number from 0 to 1, got -1"),
    ({"conf": 2}, "conf (the minimum score) must be a number from 0 to 1, got 2"),
    ({"conf": math.nan}, "conf (the minimum score) must be a number from 0 to 1, got nan"),
    ({"iou": -1}, "iou (the NMS overlap limit) must be a number from 0 to 1, got -1"),
    ({"max_det": 0}, "max_det (the detections kept per image) must be a positive integer, got 0"),
    ({"classes": [999]}, "Class id 999 is out of range: the model has 80 classes (0 to 79)"),
    ({"classes": [-1]}, "Class id -1 is out of range"),
    ({"threads": -3}, "threads must be a positive integer, got -3"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_LOAD)
def test_load_refuses_bad_values(models: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        edgecv.load(models / MODEL, **kwargs)
    assert message in str(caught.value)


def test_load_refuses_an_empty_names_file(models: Path, empty_names: Path) -> None:
    with pytest.raises(ConfigError, match="holds no class names"):
        edgecv.load(models / MODEL, names=empty_names)
    with pytest.raises(ConfigError, match="class names are empty"):
        edgecv.load(models / MODEL, names=[])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"conf": -5}, "conf (the minimum score) must be a number from 0 to 1, got -5"),
        ({"iou": 1.5}, "iou (the NMS overlap limit) must be a number from 0 to 1, got 1.5"),
        ({"max_det": 0}, "must be a positive integer, got 0"),
        ({"classes": [80]}, "Class id 80 is out of range: the model has 80 classes"),
        ({"classes": []}, "classes is empty"),
        ({"conf": "0.5"}, "got '0.5'"),
    ],
)
def test_model_call_refuses_bad_values(
    model: edgecv.Model, bus_path: Path, overrides: dict, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        model(bus_path, **overrides)
    assert message in str(caught.value)


def test_model_call_refuses_an_unknown_keyword_listing_the_known_ones(
    model: edgecv.Model, bus_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        model(bus_path, colour="red")
    message = str(caught.value)
    assert "Unknown model() option(s): colour" in message
    for known in ("conf", "iou", "max_det", "classes", "agnostic", "multi_label"):
        assert known in message


def test_good_values_still_work(model: edgecv.Model, bus_path: Path) -> None:
    everything = model(bus_path)
    people = model(bus_path, conf=0.5, classes=0, max_det=2)  # one id is accepted as a list of one
    assert set(people.labels) == {"person"} and len(people) == 2
    assert len(model(bus_path, classes=np.array([0, 5]))) == len(everything)
    assert PostprocessOptions(conf=0, iou=1).conf == 0


# --- the CLI: the same checks, one error line --------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--conf", "-1"], "conf (the minimum score) must be a number from 0 to 1, got -1.0"),
        (["--conf", "2"], "got 2.0"),
        (["--conf", "nan"], "got nan"),
        (["--iou", "-1"], "iou (the NMS overlap limit) must be a number from 0 to 1"),
        (["--max-det", "0"], "max_det (the detections kept per image) must be a positive integer, got 0"),
        (["--classes", "999"], "Class id 999 is out of range: the model has 80 classes (0 to 79)"),
        (["--threads", "-3"], "threads must be a positive integer, got -3"),
    ],
)
def test_cli_refuses_bad_values(models: Path, bus_path: Path, options: list[str], fragment: str) -> None:
    result = run_edgecv("predict", bus_path, "--model", models / MODEL, *options)
    assert_one_line_error(result, fragment)


def test_cli_refuses_an_empty_names_file(models: Path, bus_path: Path, empty_names: Path) -> None:
    result = run_edgecv("predict", bus_path, "--model", models / MODEL, "--names", empty_names)
    assert_one_line_error(result, f"Names file {empty_names} holds no class names")


# --- event classes are checked against the model's names ------------------------------------------


def test_event_class_typo_names_the_class_and_suggests_close_matches() -> None:
    with pytest.raises(ConfigError) as caught:
        EventPolicy(classes=["persn", "car", "Dog"]).check_classes(COCO80)
    message = str(caught.value)
    assert "Unknown event classes: 'Dog' (did you mean 'dog'?), 'persn' (did you mean 'person'?)" in message
    assert "Known: person, bicycle, car" in message and "(80 in all)" in message
    EventPolicy(classes=["person", "2", "traffic light"]).check_classes(COCO80)  # labels and ids are fine
    with pytest.raises(ConfigError, match="'80'"):
        EventPolicy(classes=["80"]).check_classes(COCO80)


def test_selector_checks_event_classes_on_the_first_frame() -> None:
    selector = EventSelector(EventPolicy(classes=["persn"]), "model.onnx", "cam0")
    detections = edgecv.Detections([[0, 0, 10, 10]], [0.9], [0], names=COCO80)
    with pytest.raises(ConfigError, match="did you mean 'person'"):
        selector.select(detections, frame=0, time=0.0)


@pytest.fixture
def short_video(tmp_path: Path) -> Path:
    """Four grey 96x64 frames: the check happens before anything is detected."""
    path = tmp_path / "grey.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (96, 64))
    for _ in range(4):
        writer.write(np.full((64, 96, 3), 128, np.uint8))
    writer.release()
    return path


def test_cli_run_refuses_an_event_class_typo(models: Path, short_video: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.db"
    result = run_edgecv(
        "run",
        short_video,
        "--model",
        models / MODEL,
        "--events",
        events,
        "--event-classes",
        "persn",
        "--json",
        "--thermal",
        "off",
    )
    assert_one_line_error(result, "Unknown event class: 'persn' (did you mean 'person'?)", "--event-classes")

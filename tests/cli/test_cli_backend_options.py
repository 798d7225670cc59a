"""``-o/--option KEY=VALUE``: any backend option from the CLI, checked by the backend that gets it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import pytest
from cli_helpers import ASSETS, BUS, assert_one_line_error, edgecv

from edgecv.cli.options import parse_option_value
from edgecv.images import read_image

MODEL_320 = ASSETS / "models" / "yolo11n_320_fp32_dequant.onnx"
TFLITE = ASSETS / "models" / "yolo11n_int8.tflite"
QUICK_BENCH = ("--warmup", "0", "--runs", "1")
# ONNX Runtime's own options (auto prefers OpenVINO for .onnx on x86 where edgecv-openvino is installed).
ONNX = ("--backend", "onnx")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("false", False),
        ("True", True),
        ("FALSE", False),
        ("4", 4),
        ("-2", -2),
        ("0.5", 0.5),
        ("1e-3", 1e-3),
        ("CPU", "CPU"),
        ('"4"', "4"),  # a JSON string: text, although it looks like a number
        ('["CUDA", "CPU"]', ["CUDA", "CPU"]),
        ("", ""),
        ("NaN", "NaN"),  # JSON-ish, not JSON's extensions: not a number
        ("null", "null"),
        ('{"a": 1}', '{"a": 1}'),
        ("GPU.0", "GPU.0"),
    ],
)
def test_values_are_read_as_documented(text: str, value: Any) -> None:
    parsed = parse_option_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_onnx_accepts_spinning_false() -> None:
    result = edgecv(
        "predict", BUS, "--model", MODEL_320, *ONNX, "-o", "spinning=false", "--option", "threads=1", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["detections"]) == 5


@pytest.mark.parametrize(
    ("backend", "model", "name"),
    [("opencv-dnn", MODEL_320, "opencv-dnn"), ("tflite", TFLITE, "tflite")],
)
def test_a_backend_that_does_not_know_the_key_refuses_it(backend: str, model: Path, name: str) -> None:
    result = edgecv("predict", BUS, "--model", model, "--backend", backend, "-o", "spinning=false")
    assert_one_line_error(result, f"Unknown {name} option(s): spinning", "Known options:", "threads")


def test_a_bad_value_is_the_backends_one_line_error() -> None:
    result = edgecv("predict", BUS, "--model", MODEL_320, *ONNX, "-o", "spinning=sometimes")
    assert_one_line_error(result, "spinning must be true or false, got 'sometimes'")
    assert_one_line_error(
        edgecv("predict", BUS, "--model", MODEL_320, *ONNX, "-o", "inter_threads=0"),
        "inter_threads must be a positive integer",
    )


@pytest.mark.parametrize("pair", ["foo", "=1", "two words=1"])
def test_malformed_option_is_one_line(pair: str) -> None:
    assert_one_line_error(
        edgecv("predict", BUS, "--model", MODEL_320, "-o", pair), f"-o {pair!r} is not KEY=VALUE"
    )


def test_a_key_given_twice_is_refused() -> None:
    result = edgecv("predict", BUS, "--model", MODEL_320, "-o", "spinning=false", "-o", "spinning=true")
    assert_one_line_error(result, "-o spinning is given twice (spinning=false and spinning=true)")


@pytest.mark.parametrize("command", ["predict", "val", "bench"])
def test_threads_given_both_ways_is_refused(command: str) -> None:
    target = {"predict": (BUS,), "val": ("--data", ASSETS / "coco128"), "bench": ()}[command]
    result = edgecv(command, *target, "--model", MODEL_320, "--threads", "2", "-o", "threads=2")
    assert_one_line_error(result, "--threads 2 and -o threads=2 both set the threads")


def test_threads_as_an_option_is_checked_like_threads() -> None:
    assert_one_line_error(
        edgecv("predict", BUS, "--model", MODEL_320, "-o", "threads=two"),
        "threads must be a positive integer",
    )


def test_edgecv_settings_are_not_backend_options() -> None:
    result = edgecv("predict", BUS, "--model", MODEL_320, "-o", "conf=0.5")
    assert_one_line_error(result, "-o conf is edgecv's own setting", "Use --conf")


def test_bench_records_the_options() -> None:
    result = edgecv(
        "bench",
        "--model",
        MODEL_320,
        *ONNX,
        "--source",
        BUS,
        *QUICK_BENCH,
        "-o",
        "spinning=false",
        "--threads",
        "1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)["results"]
    assert record["options"] == {"spinning": False, "threads": 1}


def test_bench_refuses_unknown_keys_for_its_backend() -> None:
    result = edgecv("bench", "--model", TFLITE, "--source", BUS, *QUICK_BENCH, "-o", "spinning=false")
    assert_one_line_error(result, "Unknown tflite option(s): spinning")


def test_run_passes_options(tmp_path: Path) -> None:
    video = tmp_path / "bus.avi"
    frame = cv2.resize(read_image(BUS), (160, 120))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    ok = edgecv(
        "run", video, "--model", MODEL_320, *ONNX, "-o", "spinning=false", "--max-frames", "2", "--json"
    )
    assert ok.returncode == 0, ok.stderr
    assert len(ok.stdout.splitlines()) == 2
    refused = edgecv("run", video, "--model", MODEL_320, "--backend", "opencv-dnn", "-o", "spinning=false")
    assert_one_line_error(refused, "Unknown opencv-dnn option(s): spinning")
    assert_one_line_error(
        edgecv("run", video, "--model", MODEL_320, *ONNX, "-o", "spinning"), "is not KEY=VALUE"
    )


def test_export_option_has_no_short_form_and_keeps_o_for_output(tmp_path: Path) -> None:
    help_text = edgecv("export", "--help").stdout
    assert "-o, --output" in help_text and "--option KEY=VALUE" in help_text
    assert "-o, --option" not in help_text
    out = tmp_path / "m.onnx"
    result = edgecv("export", "--model", MODEL_320, "--to", "onnx", "--option", "precision=int8", "-o", out)
    assert_one_line_error(result, "--option precision is set by edgecv export itself", "Use --precision")
    result = edgecv("export", "--model", MODEL_320, "--to", "onnx", "--option", "optimize", "-o", out)
    assert_one_line_error(result, "--option 'optimize' is not KEY=VALUE")
    assert not out.exists()


@pytest.mark.parametrize(("target", "known"), [("onnx", "optimize"), ("ncnn", "precision")])
def test_export_refuses_an_option_the_exporter_does_not_know(tmp_path: Path, target: str, known: str) -> None:
    """A typo (``optimise``) must not be ignored: the export would silently do something else."""
    out = tmp_path / "m.out"
    result = edgecv("export", "--model", MODEL_320, "--to", target, "--option", "optimise=false", "-o", out)
    assert_one_line_error(result, f"Unknown {target.upper()} export option(s): optimise", known)
    assert not out.exists()

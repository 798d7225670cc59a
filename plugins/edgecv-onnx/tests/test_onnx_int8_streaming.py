"""INT8 calibration streams the images: flat memory, the same ranges as all at once, progress.

On YOLO11n at 320 (cheap). onnxruntime's calibrators given every image in one call keep every
intermediate output of each (~65 MB per image here, ~260 MB at 640): the memory test exports with
1 and then 5 images and fails on that growth (measured before the fix: 324 MB -> 906 MB from 2 to
10 images; after: 254 MB -> 255 MB).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnxruntime.quantization import CalibrationMethod, create_calibrator
from onnxruntime.quantization.calibrate import load_tensors_data

import edgecv
from edgecv.testing.progress import RecordedProgress
from edgecv_onnx import graph
from edgecv_onnx.calibration import ImageCalibrationReader
from edgecv_onnx.quantize import CALIBRATORS, calibrate

# Peak RSS may grow this much from 1 to 5 calibration images (it grew ~290 MB before streaming).
MAX_GROWTH_MB = 100


@pytest.fixture(scope="module")
def calib(assets: Path) -> Path:
    return assets / "coco128" / "images" / "train2017"


@pytest.fixture(scope="module")
def yolo11n(models: Path) -> Path:
    return models / "yolo11n_320_fp32_dequant.onnx"


def _export_args(source: Path, calib: Path, size: int, output: Path) -> list[str]:
    return [
        "export", "-m", str(source), "--to", "onnx", "--precision", "int8", "--calib", str(calib),
        "--calib-size", str(size), "-o", str(output),
    ]  # fmt: skip


def _peak_rss_mb(args: list[str]) -> tuple[int, subprocess.CompletedProcess[str]]:
    """Run ``edgecv ARGS`` under a fresh parent, which reports its child's peak RSS (getrusage)."""
    parent = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run([sys.executable, '-m', 'edgecv', *sys.argv[1:]], capture_output=True, "
        "text=True)\n"
        "sys.stdout.write(done.stdout)\n"
        "sys.stderr.write(done.stderr)\n"
        "print('peak-kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(done.returncode)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", parent, *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    peak_kb = int(result.stdout.rsplit("peak-kb", 1)[1])
    return peak_kb // 1024, result


def test_peak_memory_does_not_grow_with_the_calibration_set(
    tmp_path: Path, yolo11n: Path, calib: Path
) -> None:
    small, _ = _peak_rss_mb(_export_args(yolo11n, calib, 1, tmp_path / "one.onnx"))
    large, piped = _peak_rss_mb(_export_args(yolo11n, calib, 5, tmp_path / "five.onnx"))
    assert large - small < MAX_GROWTH_MB, (small, large)
    assert large < 1024, large
    # Piped: the result line only, no progress bar.
    assert piped.stderr == "", piped.stderr
    assert piped.stdout.splitlines()[0] == f"exported {yolo11n} -> {tmp_path / 'five.onnx'}"


def _on_terminal(args: list[str]) -> str:
    """What ``edgecv ARGS`` writes (stdout and stderr) on a pseudo-terminal."""
    chunks: list[bytes] = []

    def read(fd: int) -> bytes:
        data = os.read(fd, 65536)
        chunks.append(data)
        return data

    status = pty.spawn([sys.executable, "-m", "edgecv", *args], read)
    text = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    return text


def test_progress_on_a_terminal_and_the_calibration_half(tmp_path: Path, yolo11n: Path, calib: Path) -> None:
    output = tmp_path / "m.onnx"
    text = _on_terminal([*_export_args(yolo11n, calib, 2, output), "--calib-subset", "odd"])
    for stage in ("preparing the graph", "calibrating: bounds", "calibrating: histograms", "quantizing"):
        assert stage in text, text
    assert "calibrating: histograms  [####################################]  2/2" in text, text
    assert f"exported {yolo11n} -> {output}" in text
    metadata = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
    calibration = json.loads(metadata["edgecv_calibration"])
    odd = sorted(calib.iterdir())[1::2]
    assert (calibration["subset"], calibration["count"]) == ("odd", 2)
    assert (calibration["first"], calibration["last"]) == (odd[0].name, odd[len(odd) // 2].name)


@pytest.mark.parametrize("method", list(CALIBRATORS))
def test_streamed_ranges_equal_onnxruntimes_all_at_once(
    method: str, tmp_path: Path, yolo11n: Path, calib: Path
) -> None:
    """Image by image gives onnxruntime's all-images-in-one-call ranges exactly, for every method."""
    model = onnx.load(str(yolo11n))
    graph.fix_input_size(model, (320, 320))
    prepared = tmp_path / "prepared.onnx"
    onnx.save(graph.upgrade_opset(model, 13), str(prepared))
    reference = edgecv.load(yolo11n)
    files = sorted(calib.iterdir())[:3]
    name, options = CALIBRATORS[method]

    whole = create_calibrator(
        prepared,
        augmented_model_path=str(tmp_path / "whole.onnx"),
        calibrate_method=getattr(CalibrationMethod, name),
        extra_options=dict(options),
    )
    whole.collect_data(ImageCalibrationReader(reference, files))
    expected = whole.compute_data()

    work = tmp_path / "work"
    work.mkdir()
    recorder = RecordedProgress()
    cache = calibrate(prepared, ImageCalibrationReader(reference, files), method, work, set(), recorder)
    streamed = load_tensors_data(cache)

    tensors = set(expected.keys())  # TensorsData: keys() and [] only
    assert set(streamed.keys()) == tensors
    for tensor in sorted(tensors):
        np.testing.assert_array_equal(streamed[tensor].range_value, expected[tensor].range_value, tensor)
    passes = (
        ["calibrating: ranges"] if name == "MinMax" else ["calibrating: bounds", "calibrating: histograms"]
    )
    assert recorder.stages == [(stage, 3, 3) for stage in passes]

"""The bench's pieces in process: statistics, the measurement loop, power attribution, the report.

No wall-clock thresholds: only relations that hold however slow or noisy the machine is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pytest

import edgecv
from edgecv.bench import (
    benchmark,
    describe_device,
    format_report,
    model_size_bytes,
    peak_rss_mb,
    result_record,
    summarize,
)
from edgecv.bench.report import format_table
from edgecv.bench.runner import _schedule
from edgecv.bench.stats import paired_ratio
from edgecv.images import read_image
from edgecv.model import Model
from edgecv.sensors import Unavailable
from edgecv.testing.progress import RecordedProgress

MODEL_320 = "yolo11n_320_fp32_dequant.onnx"


class CountingEnergyMeter:
    """Energy that grows by one joule per read: every timed turn is worth exactly one joule."""

    source = "fake-energy"
    description = "one joule per read"
    kind: Literal["energy", "power"] = "energy"
    min_interval_s = 0.0

    def __init__(self) -> None:
        self.reads = 0

    def read(self) -> float:
        self.reads += 1
        return float(self.reads)


class ConstantPowerMeter:
    source = "fake-power"
    description = "4 W"
    kind: Literal["energy", "power"] = "power"
    min_interval_s = 0.0

    def read(self) -> float:
        return 4.0


class FailingMeter(ConstantPowerMeter):
    source = "flaky"

    def read(self) -> float:
        raise OSError("i2c timeout")


@pytest.fixture(scope="module")
def model(models: Path) -> Model:
    return edgecv.load(models / MODEL_320, backend="onnx")


@pytest.fixture(scope="module")
def bus(bus_path: Path) -> npt.NDArray[np.uint8]:
    return read_image(bus_path)


def test_summarize_percentiles() -> None:
    summary = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (summary.p50, summary.mean, summary.min, summary.max, summary.n) == (3.0, 3.0, 1.0, 5.0, 5)
    assert summary.p95 == pytest.approx(4.8)
    assert summary.to_dict()["p95"] == 4.8
    with pytest.raises(ValueError):
        summarize([])


def test_paired_ratio_is_the_median_of_ratios() -> None:
    assert paired_ratio([2.0, 3.0, 10.0], [1.0, 3.0, 4.0]) == 2.0


def test_format_table_aligns_columns() -> None:
    lines = format_table(["model", "ms"], [["a", "1.5"], ["longer", "12.25"]])
    assert lines == ["model      ms", "------  -----", "a         1.5", "longer  12.25"]


def test_model_size_of_file_and_folder(tmp_path: Path, models: Path) -> None:
    file = models / MODEL_320
    assert model_size_bytes(file) == file.stat().st_size
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.param").write_bytes(b"x" * 10)
    (tmp_path / "sub" / "model.bin").write_bytes(b"y" * 32)
    assert model_size_bytes(tmp_path) == 42


def test_schedule_blocks_open_with_an_untimed_call() -> None:
    assert _schedule(1, warmup=2, runs=3, interleave=True, block=2) == [
        (0, False), (0, False), (0, True), (0, True), (0, True)
    ]  # fmt: skip
    turns = _schedule(2, warmup=1, runs=3, interleave=True, block=2)
    assert turns == [
        (0, False), (1, False),                      # warm-up
        (0, False), (0, True), (0, True),            # block 1: settle, then timed
        (1, False), (1, True), (1, True),
        (0, False), (0, True),                       # block 2: what is left
        (1, False), (1, True),
    ]  # fmt: skip
    sequential = _schedule(2, warmup=1, runs=2, interleave=False, block=2)
    assert sequential == [(0, False), (0, True), (0, True), (1, False), (1, True), (1, True)]


def test_benchmark_measures_every_call(model: Model, bus: npt.NDArray[np.uint8]) -> None:
    (result,) = benchmark([model], bus, warmup=1, runs=4)
    for summary in (result.e2e, result.preprocess, result.infer, result.postprocess, result.bare):
        assert summary is not None and summary.n == 4
        assert 0 < summary.min <= summary.p50 <= summary.p95 <= summary.max
    # Each call's stages are timed inside its end-to-end wall time, so the means keep that order.
    stages = result.preprocess.mean + result.infer.mean + result.postprocess.mean
    assert stages <= result.e2e.mean
    assert result.bare is not None
    assert result.overhead == pytest.approx(result.e2e.p50 / result.bare.p50)
    assert result.fps == pytest.approx(1000 / result.e2e.p50)
    assert result.detections == 5
    assert result.power.watts is None and result.power.reason == "not measured"
    assert (result.warmup, result.runs) == (1, 4)


def test_benchmark_interleaves_and_attributes_energy(model: Model, bus: npt.NDArray[np.uint8]) -> None:
    meter = CountingEnergyMeter()
    first, second = benchmark([model, model], bus, warmup=2, runs=3, meter=meter)
    # Two reads per timed turn (before and after), none during the warm-up.
    assert meter.reads == 2 * 3 * 2
    for result in (first, second):
        assert result.e2e.n == 3
        assert result.power.source == "fake-energy"
        assert result.power.watts is not None and result.power.watts > 0
        assert result.fps_per_watt == pytest.approx(result.fps / result.power.watts)


def test_benchmark_power_samples_and_failures(model: Model, bus: npt.NDArray[np.uint8]) -> None:
    (constant,) = benchmark([model], bus, warmup=0, runs=3, meter=ConstantPowerMeter(), interleave=False)
    assert constant.power.watts == 4.0 and constant.power.samples == 3
    (flaky,) = benchmark([model], bus, warmup=0, runs=2, meter=FailingMeter())
    assert flaky.power.watts is None
    assert flaky.power.reason is not None and "i2c timeout" in flaky.power.reason
    (absent,) = benchmark([model], bus, warmup=0, runs=1, meter=Unavailable("no sensor here"))
    assert absent.power.reason == "no sensor here"


def test_benchmark_progress_and_argument_checks(model: Model, bus: npt.NDArray[np.uint8]) -> None:
    progress = RecordedProgress()
    benchmark([model], bus, warmup=1, runs=2, progress=progress)
    assert progress.stages == [("bench", 3, 3)]  # one step per turn, untimed ones too
    with pytest.raises(ValueError):
        benchmark([model], bus, runs=0)


def test_record_and_text_report(model: Model, bus: npt.NDArray[np.uint8]) -> None:
    (result,) = benchmark([model], bus, warmup=0, runs=2)
    record = result_record(model, result, options={"threads": 1}, speedup=1.0)
    assert record["size_bytes"] == model.spec.path.stat().st_size
    assert record["imgsz"] == [320, 320] and record["backend"] == "onnx"
    assert record["latency_ms"]["e2e"]["p50"] == round(result.e2e.p50, 3)
    assert record["peak_rss_mb"] > 0
    assert record["power"]["reason"] == "not measured"
    report = {"device": describe_device(), "results": [record]}
    text = format_report(report)
    assert MODEL_320 in text and "bare runtime" in text and "process-wide" in text
    two = format_report({"device": report["device"], "results": [record, {**record, "backend": "other"}]})
    assert "speed-up" in two and "1.00x" in two


def test_peak_rss_is_positive() -> None:
    peak = peak_rss_mb()
    assert peak is not None and peak > 0

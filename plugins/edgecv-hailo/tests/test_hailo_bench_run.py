"""``edgecv bench`` and ``edgecv run`` on the fake HailoRT: single-frame latency and pipelined
throughput, the device record and chip temperature, and frames in flight in the running service.

No wall-clock thresholds (the fake computes with ONNX Runtime on a shared CPU): only what the
reports contain and how many frames the device held at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import hailo_fakes
import pytest
from click.testing import CliRunner

import edgecv
from edgecv.cli import cli
from edgecv.runtime.loop import RunConfig, Runtime


@pytest.fixture
def hailo(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return hailo_fakes.install_fake(monkeypatch, queue_size=3, temperature=(55.0, 56.5))


@pytest.fixture(scope="module")
def hef(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hef")
    return hailo_fakes.write_fake_hef(folder / "yolov8n.hef", models / "yolov8n_fp32_dequant.onnx")


def test_bench_reports_latency_and_pipelined_throughput(hailo: ModuleType, hef: Path, bus_path: Path) -> None:
    args = ["bench", "-m", str(hef), "--source", str(bus_path), "--warmup", "1", "--runs", "6"]
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.output)["results"]
    assert record["backend"] == "hailo"
    assert record["latency_ms"]["e2e"]["p50"] > 0 and record["fps"] > 0  # single-frame latency
    pipelined = record["pipelined"]
    assert pipelined["in_flight"] == 3 and pipelined["frames"] == 6 and pipelined["fps"] > 0
    assert hailo.fake.max_in_flight == 3  # the device really held the frames at once
    assert record["device"]["device"] == "Hailo-8L"
    assert record["device_temperature_c"]["after"] == 56.5
    text = CliRunner().invoke(cli, args, catch_exceptions=False).output
    assert "pipelined" in text and "Hailo-8L" in text


def test_run_keeps_frames_in_flight_and_delivers_them_in_order(
    hailo: ModuleType, hef: Path, assets: Path
) -> None:
    video = assets / "videos" / "pedestrians_vtest_30s.mp4"
    with edgecv.load(hef) as model:
        expected_depth = model.session.depth  # type: ignore[attr-defined]
        with Runtime(model, video, RunConfig(max_frames=12), thermal=False) as runtime:
            indexes = [result.frame for result in runtime.results()]
    assert indexes == sorted(indexes) and len(indexes) == 12
    assert expected_depth == 3 and hailo.fake.max_in_flight == 3


def test_doctor_lists_the_chip_its_firmware_and_temperature(hailo: ModuleType) -> None:
    from edgecv.cli.doctor import doctor_lines, doctor_report

    report = doctor_report()
    (entry,) = [b for b in report["backends"] if b["name"] == "hailo"]
    assert entry["available"] and entry["devices"]["device"] == "Hailo-8L"
    assert entry["devices"]["firmware"] == "4.20.0" and entry["devices"]["temperature_c"] == 56.5
    line = next(line for line in doctor_lines(report) if line.startswith("device        hailo:"))
    assert "Hailo-8L" in line and "hailort 4.20.0" in line and "56.5 °C" in line
    assert hailo.fake.closed  # describing the chip gave the device back

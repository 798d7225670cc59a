"""``edgecv bench`` on a backend that keeps frames in flight (issue 15): pipelined throughput next to
single-frame latency, and an accelerator's device record and chip temperature.

The asynchronous session is the real ONNX Runtime session of the onnx backend behind
``edgecv.testing.queued``'s queue (real outputs, a real queue that counts what is outstanding).
No wall-clock thresholds: only counts and relations that hold however slow the machine is.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import edgecv
from edgecv.bench import benchmark, format_report, result_record
from edgecv.bench.runner import pipelined_throughput
from edgecv.errors import BackendError
from edgecv.images import read_image
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv.testing.progress import RecordedProgress
from edgecv.testing.queued import QueuedBackend, QueuedDeviceSession, QueuedSession

MODEL = "yolo11n_320_fp32_dequant.onnx"
DEVICE = {"cpu": "test CPU", "cores": 2, "cores_usable": 2, "machine": "x86_64"}

# `edgecv bench` in a subprocess with the queued backend registered, as an accelerator plugin would be.
WITH_QUEUED = """
import sys
from edgecv import plugins
from edgecv.testing.queued import QueuedBackend
plugins.register(QueuedBackend(depth=3, device=True), name="queued")
from edgecv.cli import main
sys.argv[0] = "edgecv"
main()
"""


@pytest.fixture(scope="module")
def bus(assets: Path) -> npt.NDArray[np.uint8]:
    return read_image(assets / "images" / "bus.jpg")


@pytest.fixture
def load(
    fresh_plugins: ModuleType, models: Path
) -> Iterator[Callable[..., tuple[edgecv.Model, QueuedSession]]]:
    loaded: list[edgecv.Model] = []

    def open_queued(**queued: Any) -> tuple[edgecv.Model, QueuedSession]:
        backend = QueuedBackend(f"queued{len(loaded)}", **queued)
        fresh_plugins.register(backend, name=backend.name)
        model = edgecv.load(models / MODEL, backend=backend.name)
        loaded.append(model)
        return model, backend.sessions[-1]

    yield open_queued
    for model in loaded:
        model.close()


def hold_until(session: QueuedSession, submitted: int) -> None:
    """Hold the device until ``submitted`` frames are queued: the queue really fills up."""
    session.gate.clear()

    def release() -> None:
        for _ in range(1000):  # 10 s at most
            if session.submitted >= submitted:
                break
            threading.Event().wait(0.01)
        session.gate.set()

    threading.Thread(target=release, daemon=True).start()


def test_pipelined_run_keeps_the_sessions_depth_in_flight(
    load: Callable[..., tuple[edgecv.Model, QueuedSession]], bus: npt.NDArray[np.uint8]
) -> None:
    model, session = load(depth=3)
    hold_until(session, 3)
    progress = RecordedProgress()
    (measurement,) = benchmark([model], bus, warmup=1, runs=8, progress=progress)
    pipelined = measurement.pipelined
    assert pipelined is not None and measurement.pipelined_reason is None
    assert (pipelined.in_flight, pipelined.frames) == (3, 8)
    assert pipelined.seconds > 0 and pipelined.fps == pytest.approx(8 / pipelined.seconds)
    assert session.submitted == 8 and session.max_outstanding == 3  # the latency runs use run()
    assert progress.stages == [("bench", 9, 9), ("pipelined", 8, 8)]
    record = result_record(model, measurement)
    assert record["pipelined"] == {
        "in_flight": 3,
        "fps": round(pipelined.fps, 3),
        "frames": 8,
        "seconds": round(pipelined.seconds, 4),
    }
    text = format_report({"device": DEVICE, "results": [record]})
    assert (
        f"pipelined    {pipelined.fps:.2f} FPS with 3 frames in flight (8 frames through Model.submit)"
        in text
    )
    assert record["device"] is None and "Queued" not in text  # not a DeviceSession


def test_an_explicit_in_flight_wins_and_is_never_exceeded(
    load: Callable[..., tuple[edgecv.Model, QueuedSession]], bus: npt.NDArray[np.uint8]
) -> None:
    model, session = load(depth=4, workers=4)
    hold_until(session, 2)
    (measurement,) = benchmark([model], bus, warmup=0, runs=6, in_flight=2)
    assert measurement.pipelined is not None and measurement.pipelined.in_flight == 2
    assert session.max_outstanding == 2 and session.submitted == 6
    with pytest.raises(ValueError):
        benchmark([model], bus, runs=1, in_flight=0)


def test_a_failed_or_lost_frame_is_one_backend_error(
    load: Callable[..., tuple[edgecv.Model, QueuedSession]], bus: npt.NDArray[np.uint8]
) -> None:
    model, session = load()
    session.fail_next = True
    with pytest.raises(
        BackendError, match=r"A frame in flight failed .*RuntimeError: the device lost the frame"
    ):
        pipelined_throughput(model, bus, frames=3, in_flight=2)
    session.stall_next = True
    with pytest.raises(BackendError, match=r"gave no result in 0\.2 s") as raised:
        pipelined_throughput(model, bus, frames=3, in_flight=2, timeout_s=0.2)
    assert "--in-flight 1" in str(raised.value)


def test_a_synchronous_backend_reports_no_pipelined_run(
    models: Path, fresh_plugins: ModuleType, bus: npt.NDArray[np.uint8]
) -> None:
    model = edgecv.load(models / MODEL, backend="onnx")
    progress = RecordedProgress()
    (measurement,) = benchmark([model], bus, warmup=0, runs=2, progress=progress)
    assert measurement.pipelined is None and measurement.pipelined_reason == "synchronous backend"
    assert progress.stages == [("bench", 2, 2)]
    record = result_record(model, measurement)
    assert record["pipelined"] is None and record["pipelined_reason"] == "synchronous backend"
    assert "pipelined    n/a (synchronous backend)" in format_report({"device": DEVICE, "results": [record]})
    two = format_report({"device": DEVICE, "results": [record, record]})
    assert "pipelined" not in two  # no column when no row has a pipelined run


def test_a_plugin_wrapping_infer_makes_the_queued_model_synchronous(
    load: Callable[..., tuple[edgecv.Model, QueuedSession]],
    fresh_plugins: ModuleType,
    bus: npt.NDArray[np.uint8],
) -> None:
    model, session = load()

    class Wraps:
        @edgecv.hookimpl(hookwrapper=True)
        def edgecv_infer(self, spec: Any, session: Any, tensor: Any) -> Iterator[None]:
            yield

    fresh_plugins.register(Wraps(), name="wraps-infer")
    (measurement,) = benchmark([model], bus, warmup=0, runs=2)
    assert measurement.pipelined is None and session.submitted == 0
    assert measurement.pipelined_reason == "a plugin wraps edgecv_infer, so frames run one at a time"


def test_an_accelerator_reports_its_device_and_chip_temperature(
    load: Callable[..., tuple[edgecv.Model, QueuedSession]],
    models: Path,
    bus: npt.NDArray[np.uint8],
) -> None:
    model, session = load(device=True)
    assert isinstance(session, QueuedDeviceSession)
    session.described = {"device": "Hailo-8L", "firmware": "4.20.0", "hailort": "4.20.0"}
    readings = iter([51.04, 53.96])
    session.celsius = None

    def read_chip() -> float | None:
        session.temperature_reads += 1
        return next(readings)

    session.temperature = read_chip  # type: ignore[method-assign]
    cpu_model = edgecv.load(models / MODEL, backend="onnx")
    try:
        chip, cpu = benchmark([model, cpu_model], bus, warmup=0, runs=2)
    finally:
        cpu_model.close()
    assert session.temperature_reads == 2  # before the first call and after the last
    assert chip.chip is not None and (chip.chip.before, chip.chip.after) == (51.04, 53.96)
    assert cpu.chip is None
    record = result_record(model, chip)
    assert record["device"] == {"device": "Hailo-8L", "firmware": "4.20.0", "hailort": "4.20.0"}
    assert record["device_temperature_c"] == {"before": 51.0, "after": 54.0, "source": "Hailo-8L chip"}
    cpu_record = result_record(cpu_model, cpu)
    assert cpu_record["device"] is None and cpu_record["device_temperature_c"] is None
    for records in ([record], [record, cpu_record]):
        lines = format_report({"device": DEVICE, "results": records}).splitlines()
        device_line = next(line for line in lines if line.startswith("device "))
        assert device_line.endswith("; queued0: Hailo-8L, firmware 4.20.0, hailort 4.20.0"), device_line
        temperature_line = next(line for line in lines if line.startswith("temperature "))
        assert temperature_line.endswith("; Hailo-8L chip 51.0 °C before, 54.0 °C after"), temperature_line


def test_an_unreadable_chip_reads_na(
    load: Callable[..., tuple[edgecv.Model, QueuedSession]], bus: npt.NDArray[np.uint8]
) -> None:
    model, session = load(device=True)
    assert isinstance(session, QueuedDeviceSession)
    session.celsius = OSError("sensor gone")
    (measurement,) = benchmark([model], bus, warmup=0, runs=1)
    record = result_record(model, measurement)
    assert record["device_temperature_c"] == {"before": None, "after": None, "source": "Queued-8L chip"}
    assert "; Queued-8L chip n/a before, n/a after" in format_report({"device": DEVICE, "results": [record]})


def test_bench_command_reports_latency_and_pipelined_throughput(models: Path, bus_path: Path) -> None:
    args = ("bench", "--model", models / MODEL, "--backend", "queued", "--source", bus_path)
    quick = ("--warmup", "1", "--runs", "6")
    result = run_edgecv(*args, *quick, "--in-flight", "2", "--json", code=WITH_QUEUED)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["run"]["in_flight"] == 2
    (record,) = report["results"]
    assert record["latency_ms"]["e2e"]["n"] == 6 and record["fps"] > 0
    pipelined = record["pipelined"]
    assert (pipelined["in_flight"], pipelined["frames"]) == (2, 6) and pipelined["fps"] > 0
    assert record["device"] == {"device": "Queued-8L", "firmware": "1.0.0"}
    assert record["device_temperature_c"] == {"before": 50.0, "after": 50.0, "source": "Queued-8L chip"}
    text = run_edgecv(*args, *quick, code=WITH_QUEUED)
    assert text.returncode == 0, text.stderr
    assert (
        "pipelined    " in text.stdout
        and "with 3 frames in flight (6 frames through Model.submit)" in text.stdout
    )
    assert "; queued: Queued-8L, firmware 1.0.0" in text.stdout


def test_in_flight_with_video_is_one_error_line(models: Path, assets: Path) -> None:
    video = assets / "videos" / "pedestrians_vtest_30s.mp4"
    result = run_edgecv("bench", "--model", models / MODEL, "--video", video, "--in-flight", "2")
    assert_one_line_error(result, "--in-flight", "--video")

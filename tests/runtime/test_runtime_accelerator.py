"""The runtime on an accelerator (issue 15): frames in flight default to the session's ``depth``,
and the thermal governor watches the accelerator's chip as well as the SoC.

The sessions are the real ONNX Runtime session of the onnx backend behind ``edgecv.testing.queued``'s
queue; ``QueuedDeviceSession`` adds the chip temperature a Hailo session reads from its device.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import edgecv
from edgecv.backends import Session
from edgecv.runtime.loop import RunConfig, Runtime
from edgecv.runtime.results import FrameResult
from edgecv.runtime.thermal import ThermalGovernor
from edgecv.sensors import Temperature, Unavailable
from edgecv.testing.queued import QueuedBackend, QueuedDeviceSession, QueuedSession

MODEL = "yolo11n_320_fp32_dequant.onnx"
VIDEO = "pedestrians_vtest_30s.mp4"
SOC = "thermal_zone0 (cpu-thermal)"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def onnx_session(models: Path) -> Iterator[Session]:
    from edgecv import plugins

    onnx = next(b for b in plugins.backends() if b.name == "onnx")
    session = onnx.open(models / MODEL, {})
    yield session
    session.close()


def chip(session: Session, celsius: float | Exception | None) -> QueuedDeviceSession:
    return QueuedDeviceSession(session, described={"device": "Hailo-8L"}, celsius=celsius)


def soc(celsius: float) -> Temperature:
    return Temperature(celsius, SOC)


# --- the governor ----------------------------------------------------------------------------------


def test_a_hot_chip_pauses_inference_while_the_soc_is_cool(onnx_session: Session) -> None:
    device = chip(onnx_session, 90.0)
    governor = ThermalGovernor(reader=lambda: soc(40.0), clock=FakeClock())
    governor.watch(device)
    state = governor.poll()
    assert state is not None and state.paused
    assert (state.celsius, state.source) == (90.0, "Hailo-8L chip")


@pytest.mark.parametrize(
    ("soc_celsius", "chip_celsius", "expected"),
    [
        (80.0, 60.0, (80.0, SOC)),  # the SoC is the hotter
        (60.0, 80.0, (80.0, "Hailo-8L chip")),
        (80.0, None, (80.0, SOC)),  # the chip gives nothing: the SoC alone
        (80.0, RuntimeError("HAILO_TIMEOUT"), (80.0, SOC)),  # the chip's read raises: the SoC alone
    ],
)
def test_the_hotter_reading_wins_and_a_silent_chip_falls_back_to_the_soc(
    onnx_session: Session,
    soc_celsius: float,
    chip_celsius: float | Exception | None,
    expected: tuple[float, str],
) -> None:
    governor = ThermalGovernor(reader=lambda: soc(soc_celsius), clock=FakeClock())
    governor.watch(chip(onnx_session, chip_celsius))
    state = governor.poll()
    assert state is not None and 0.2 < state.factor < 1.0
    assert (state.celsius, state.source) == expected


def test_a_chip_alone_throttles_and_is_read_again_after_a_miss(onnx_session: Session) -> None:
    clock = FakeClock()
    device = chip(onnx_session, None)
    governor = ThermalGovernor(reader=lambda: Unavailable("no thermal zone"), clock=clock)
    governor.watch(device)
    assert (
        governor.poll() is None and governor.unavailable == "no thermal zone; Hailo-8L chip: no temperature"
    )
    device.celsius = 80.0  # the chip answers later: the governor still looks (a SoC alone is given up)
    clock.now += governor.interval_s
    state = governor.poll()
    assert state is not None and state.source == "Hailo-8L chip" and state.factor < 1.0
    assert device.temperature_reads == 2


def test_a_session_without_a_chip_changes_nothing(onnx_session: Session) -> None:
    def reader() -> Temperature | Unavailable:
        return soc(40.0)

    governor = ThermalGovernor(reader=reader)
    governor.watch(QueuedSession(onnx_session))
    governor.watch(onnx_session)
    assert governor._reader is reader


# --- the runtime -----------------------------------------------------------------------------------


def load(fresh_plugins: ModuleType, models: Path, **queued: object) -> tuple[edgecv.Model, QueuedSession]:
    backend = QueuedBackend(**queued)  # type: ignore[arg-type]
    fresh_plugins.register(backend, name="queued")
    return edgecv.load(models / MODEL, backend="queued"), backend.sessions[-1]


def run(model: edgecv.Model, video: Path, config: RunConfig, **options: object) -> list[FrameResult]:
    with Runtime(model, video, config, **options) as runtime:  # type: ignore[arg-type]
        return list(runtime.results())


@pytest.mark.parametrize(("depth", "in_flight", "expected"), [(4, None, 4), (1, None, 2), (4, 2, 2)])
def test_frames_in_flight_default_to_the_sessions_depth(
    fresh_plugins: ModuleType,
    models: Path,
    assets: Path,
    depth: int,
    in_flight: int | None,
    expected: int,
) -> None:
    model, session = load(fresh_plugins, models, depth=depth)
    assert RunConfig().in_flight is None
    session.gate.clear()  # frames queue up until `expected` are in flight, then the device runs
    waiter = threading.Thread(target=_open_when, args=(session, expected), daemon=True)
    waiter.start()
    try:
        results = run(
            model, assets / "videos" / VIDEO, RunConfig(max_frames=8, in_flight=in_flight), thermal=False
        )
    finally:
        session.gate.set()
        model.close()
    assert session.max_outstanding == expected
    assert len(results) == 8 and all(r.inferred for r in results)


def _open_when(session: QueuedSession, submitted: int) -> None:
    for _ in range(1000):  # 10 s at most
        if session.submitted >= submitted:
            break
        threading.Event().wait(0.01)
    session.gate.set()


def test_a_hot_chip_pauses_the_run_on_a_cool_soc(
    fresh_plugins: ModuleType, models: Path, assets: Path
) -> None:
    model, session = load(fresh_plugins, models, device=True)
    assert isinstance(session, QueuedDeviceSession)
    session.celsius = 90.0
    governor = ThermalGovernor(reader=lambda: soc(40.0))
    try:
        results = run(model, assets / "videos" / VIDEO, RunConfig(max_frames=3), thermal=governor)
    finally:
        model.close()
    assert [r.paused for r in results] == [True, True, True] and session.submitted == 0
    assert governor.state.source == "Queued-8L chip" and governor.state.celsius == 90.0

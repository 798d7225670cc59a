"""What the core gives accelerator plugins (issue 15): ``DeviceSession``, ``AsyncSession.depth``,
``Backend.describe`` in ``edgecv doctor``, and the Hailo entries of the install advice.

Sessions are the real ONNX Runtime session of the onnx backend behind ``edgecv.testing.queued``'s
queue (``QueuedDeviceSession`` adds a device record and a chip temperature the test sets).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import edgecv
from edgecv import backend as plugin_api
from edgecv import hardware
from edgecv.backends import (
    MAX_DEFAULT_IN_FLIGHT,
    AsyncSession,
    Backend,
    DeviceSession,
    Session,
    frames_in_flight,
    select_backend,
)
from edgecv.cli.doctor import doctor_lines, doctor_report
from edgecv.devices import chip_temperature, device_summary
from edgecv.errors import BackendError
from edgecv.install_hints import pip_hint
from edgecv.testing.queued import QueuedBackend, QueuedDeviceSession, QueuedSession

MODEL = "yolo11n_320_fp32_dequant.onnx"


@pytest.fixture(scope="module")
def onnx_session(models: Path) -> Iterator[Session]:
    """One real ONNX Runtime session, shared: the queued sessions below only wrap it."""
    from edgecv import plugins

    onnx = next(b for b in plugins.backends() if b.name == "onnx")
    session = onnx.open(models / MODEL, {})
    yield session
    session.close()


def test_the_protocols_are_exported_and_tell_sessions_apart(onnx_session: Session) -> None:
    assert edgecv.DeviceSession is DeviceSession is plugin_api.DeviceSession
    assert "DeviceSession" in edgecv.__all__ and "DeviceSession" in plugin_api.__all__
    queued = QueuedSession(onnx_session)
    device = QueuedDeviceSession(onnx_session)
    assert isinstance(queued, AsyncSession) and not isinstance(queued, DeviceSession)
    assert isinstance(device, AsyncSession) and isinstance(device, DeviceSession)
    assert not isinstance(onnx_session, AsyncSession) and not isinstance(onnx_session, DeviceSession)


def test_frames_in_flight_is_the_depth_bounded_and_an_explicit_value_wins(
    onnx_session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    assert QueuedSession(onnx_session).depth == 2 and QueuedSession(onnx_session, workers=3).depth == 6
    assert frames_in_flight(QueuedSession(onnx_session, depth=5)) == 5
    assert frames_in_flight(QueuedSession(onnx_session, depth=5), 1) == 1  # explicit wins
    assert frames_in_flight(QueuedSession(onnx_session, depth=1)) == 2  # at least 2
    assert frames_in_flight(QueuedSession(onnx_session, depth=10**6)) == MAX_DEFAULT_IN_FLIGHT
    assert frames_in_flight(QueuedSession(onnx_session, depth=10**6), 500) == 500
    assert frames_in_flight(onnx_session) == 1  # synchronous: one at a time
    broken = QueuedSession(onnx_session)
    broken.depth = "four"  # type: ignore[assignment]  # a plugin's mistake
    assert frames_in_flight(broken) == 2
    assert "session depth unreadable (depth is str, not int)" in caplog.text


def test_chip_temperature_keeps_plausible_readings_only(onnx_session: Session) -> None:
    chip = QueuedDeviceSession(onnx_session, celsius=51.5)
    assert chip_temperature(chip) == 51.5
    for bad in (None, math.nan, math.inf, 1000.0, -300.0, RuntimeError("i2c timeout")):
        chip.celsius = bad
        assert chip_temperature(chip) is None, bad


def described_by(describe: Callable[[], Any]) -> Backend:
    return Backend(name="chip", open=lambda path, options: None, describe=describe)  # type: ignore[arg-type,return-value]


def test_describe_is_made_json_ready_and_isolated() -> None:
    assert Backend(name="plain", open=lambda path, options: None).devices() is None  # type: ignore[arg-type,return-value]
    found = described_by(
        lambda: {
            "device": "Hailo-8L\nsecond line",
            "firmware": "4.20.0",
            "serial": np.int64(7),  # not JSON: as text
            "temperature_c": math.nan,  # not JSON: null
        }
    ).devices()
    assert found == {
        "device": "Hailo-8L second line",
        "firmware": "4.20.0",
        "serial": "7",
        "temperature_c": None,
    }

    def raises() -> Mapping[str, Any]:
        raise RuntimeError("HAILO_OUT_OF_PHYSICAL_DEVICES\n(status=74)")

    assert described_by(raises).devices() == {
        "error": "describe() failed: RuntimeError: HAILO_OUT_OF_PHYSICAL_DEVICES (status=74)"
    }
    assert described_by(lambda: ["Hailo-8L"]).devices() == {
        "error": "describe() returned list, not a mapping"
    }
    release = threading.Event()
    try:
        hung = described_by(lambda: release.wait(30) and {}).devices(timeout_s=0.2)
    finally:
        release.set()
    assert hung == {"error": "describe() gave no answer in 0.2 s"}


def test_device_summary_is_one_line() -> None:
    described = {"device": "Hailo-8L", "firmware": "4.20.0", "hailort": "4.20.0", "temperature_c": 51.0}
    assert device_summary(described) == "Hailo-8L, firmware 4.20.0, hailort 4.20.0, 51.0 °C"
    assert device_summary({"firmware": "1", "temperature_c": None}) == "firmware 1"
    assert device_summary({"error": "describe() failed: X"}) == "n/a (describe() failed: X)"
    assert device_summary({"hailort": "4.20.0", "error": "no device"}) == "hailort 4.20.0 (error: no device)"
    assert device_summary({}) == "n/a (nothing described)"


class Unplugged:
    """A plugin whose backend is unavailable: doctor must not ask it to describe anything."""

    def __init__(self) -> None:
        self.asked = 0

    def describe(self) -> Mapping[str, Any]:
        self.asked += 1
        return {"device": "never"}

    @edgecv.hookimpl
    def edgecv_register_backends(self, register: Callable[[Backend], None]) -> None:
        register(
            Backend(
                name="unplugged",
                open=lambda path, options: None,  # type: ignore[arg-type,return-value]
                check=lambda: plugin_api.Availability(False, "no /dev/chip0"),
                accepts=lambda path: False,
                describe=self.describe,
            )
        )


def test_doctor_reports_each_backends_devices_and_survives_a_broken_describe(
    fresh_plugins: ModuleType,
) -> None:
    fresh_plugins.register(
        QueuedBackend(
            "chip8", describe=lambda: {"device": "Hailo-8L", "firmware": "4.20.0", "temperature_c": 51}
        ),
        name="chip8",
    )

    def broken() -> Mapping[str, Any]:
        raise OSError("/dev/hailo0: device busy")

    fresh_plugins.register(QueuedBackend("broken", describe=broken), name="broken")
    unplugged = Unplugged()
    fresh_plugins.register(unplugged, name="unplugged")
    report = doctor_report()
    devices = {info["name"]: info["devices"] for info in report["backends"]}
    assert devices["chip8"] == {"device": "Hailo-8L", "firmware": "4.20.0", "temperature_c": 51}
    assert devices["broken"] == {"error": "describe() failed: OSError: /dev/hailo0: device busy"}
    assert devices["onnx"] is None and devices["unplugged"] is None and unplugged.asked == 0
    lines = doctor_lines(report)
    assert "device        chip8: Hailo-8L, firmware 4.20.0, 51.0 °C" in lines
    assert "device        broken: n/a (describe() failed: OSError: /dev/hailo0: device busy)" in lines
    assert not any(line.startswith(("device        onnx", "device        unplugged")) for line in lines)
    assert lines[-1].startswith("install       ")


def test_hailo_is_advised_and_named_in_the_missing_backend_hint(tmp_path: Path) -> None:
    hailo = hardware.accelerator("hailo", "/dev/hailo0")
    assert hailo.packages == ("edgecv-hailo",) and "hailo-all" in hailo.note
    nothing: set[str] = set()
    advice = hardware.advice([hailo], "x86_64", nothing.__contains__)
    assert advice.packages == advice.missing == ("edgecv-hailo",)
    with pytest.raises(BackendError) as raised:
        select_backend([], "hailo", tmp_path / "yolov8n.hef")
    assert pip_hint("edgecv-hailo") in str(raised.value)

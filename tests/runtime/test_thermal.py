"""Thermal throttling: the policy's speed factor, the governor's hysteresis, polling and logging."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import pytest

from edgecv.errors import ConfigError
from edgecv.runtime.thermal import ThermalGovernor, ThermalPolicy, ThrottleState, parse_policy
from edgecv.sensors import Temperature, Unavailable, read_temperature

LOGGER = "edgecv.runtime.thermal"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Readings:
    """A reader returning the given temperatures in turn, counting the calls."""

    def __init__(self, celsius: Iterable[float]) -> None:
        self.values = iter(celsius)
        self.calls = 0

    def __call__(self) -> Temperature | Unavailable:
        self.calls += 1
        return Temperature(next(self.values), "thermal_zone0 (cpu-thermal)")


def change_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.getMessage().startswith("thermal:")
    ]


def test_factor_is_full_below_slow_from_linear_to_min_factor_at_stop() -> None:
    policy = ThermalPolicy()
    assert (policy.slow_from_c, policy.stop_at_c, policy.min_factor, policy.resume_below_c) == (
        75,
        85,
        0.2,
        80,
    )
    assert policy.factor(20.0) == 1.0
    assert policy.factor(74.9) == 1.0
    assert policy.factor(75.0) == 1.0
    assert policy.factor(80.0) == pytest.approx(0.6)
    assert policy.factor(77.5) == pytest.approx(0.8)
    assert policy.factor(85.0) == 0.2
    assert policy.factor(99.0) == 0.2


def test_ramp_up_and_down_throttles_pauses_and_resumes_with_hysteresis(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    ramp = [*range(60, 91), *range(89, 59, -1)]  # 60 → 90 → 60 °C, one degree per poll
    clock = FakeClock()
    governor = ThermalGovernor(reader=Readings(ramp), interval_s=2.0, clock=clock)
    policy = governor.policy
    states: list[ThrottleState] = []
    changes: list[ThrottleState] = []
    for _ in ramp:
        changed = governor.poll()
        if changed is not None:
            changes.append(changed)
        states.append(governor.state)
        clock.now += 2.0
    by_temp_up = {int(s.celsius or 0): s for s in states[:31]}
    by_temp_down = {int(s.celsius or 0): s for s in states[31:]}

    for celsius in range(60, 76):
        assert by_temp_up[celsius].factor == 1.0 and not by_temp_up[celsius].paused
    assert by_temp_up[80].factor == pytest.approx(0.6)
    assert by_temp_up[80].reason == "80.0 °C: throttled to 0.60"
    for celsius in range(76, 85):  # one degree moves the factor by 0.08: every step is a change
        assert by_temp_up[celsius].factor == pytest.approx(policy.factor(celsius))
        assert not by_temp_up[celsius].paused
    assert by_temp_up[85].paused and by_temp_up[85].factor == 0.2
    assert by_temp_up[85].reason == "85.0 °C: paused (resume below 80 °C)"
    assert by_temp_up[90].paused
    for celsius in (89, 84, 82, 80):  # hysteresis: still paused above the resume temperature
        assert by_temp_down[celsius].paused, celsius
    assert not by_temp_down[79].paused
    assert by_temp_down[79].factor == pytest.approx(policy.factor(79))  # 0.68
    assert by_temp_down[79].source == "thermal_zone0 (cpu-thermal)"
    assert by_temp_down[60].factor == 1.0 and by_temp_down[60].reason == "60.0 °C: full speed"

    assert sum(1 for s in changes if s.paused) == 1  # paused once, not on every hot reading
    assert changes[-1].factor == 1.0 and not changes[-1].paused
    lines = change_lines(caplog)
    assert lines == [f"thermal: {s.reason}" for s in changes]
    pause = next(r for r in caplog.records if "paused" in r.getMessage())
    assert pause.levelno == logging.WARNING


def test_small_factor_moves_are_not_changes_but_reaching_full_speed_is() -> None:
    clock = FakeClock()
    temps = [76.0, 76.2, 76.4, 76.6, 76.8, 75.5, 74.0]
    governor = ThermalGovernor(reader=Readings(temps), clock=clock)
    results = []
    for _ in temps:
        results.append(governor.poll())
        clock.now += 10.0
    first = results[0]
    assert first is not None and first.factor == pytest.approx(0.92)
    assert results[1:4] == [None, None, None]  # 0.016, 0.032, 0.048 below the applied factor
    moved = results[4]  # 0.064 below: a change
    assert moved is not None and moved.factor == pytest.approx(0.856)
    cooler = results[5]
    assert cooler is not None and cooler.factor == pytest.approx(0.96)
    back = results[6]  # only 0.04 up, but returning to full speed is always a change
    assert back is not None and back.factor == 1.0 and back.reason == "74.0 °C: full speed"


def test_state_keeps_the_applied_factor_but_the_current_reading() -> None:
    clock = FakeClock()
    governor = ThermalGovernor(reader=Readings([76.0, 76.4]), clock=clock)
    governor.poll()
    clock.now += 2.0
    assert governor.poll() is None
    assert governor.state.factor == pytest.approx(0.92)
    assert governor.state.celsius == 76.4
    assert governor.state.reason == "76.4 °C: throttled to 0.92"


def test_poll_reads_the_sensor_at_most_every_interval() -> None:
    clock = FakeClock()
    reader = Readings([60.0, 80.0, 86.0])
    governor = ThermalGovernor(reader=reader, interval_s=2.0, clock=clock)
    assert governor.poll() is None  # 60 °C: full speed, as before
    assert reader.calls == 1
    clock.now += 1.9
    assert governor.poll() is None
    assert reader.calls == 1
    clock.now += 0.1
    changed = governor.poll()
    assert reader.calls == 2 and changed is not None and changed.factor == pytest.approx(0.6)
    clock.now += 0.5
    assert governor.poll() is None and reader.calls == 2
    clock.now += 1.5
    changed = governor.poll()
    assert changed is not None and changed.paused and reader.calls == 3


def test_no_sensor_runs_at_full_speed_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    calls = []

    def reader() -> Temperature | Unavailable:
        calls.append(1)
        return Unavailable("no readable thermal zone and no vcgencmd")

    clock = FakeClock()
    governor = ThermalGovernor(reader=reader, clock=clock)
    for _ in range(5):
        assert governor.poll() is None
        clock.now += 5.0
    assert governor.state.factor == 1.0 and not governor.state.paused and governor.state.celsius is None
    assert governor.unavailable == "no readable thermal zone and no vcgencmd"
    assert len(calls) == 1  # no sensor on this device: not looked for again
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert messages == ["thermal throttling off: no readable thermal zone and no vcgencmd"]


def test_sensor_lost_while_paused_returns_to_full_speed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    readings: list[Temperature | Unavailable] = [Temperature(88.0, "zone"), Unavailable("zone gone")]
    clock = FakeClock()
    governor = ThermalGovernor(reader=lambda: readings.pop(0), clock=clock)
    paused = governor.poll()
    assert paused is not None and paused.paused
    clock.now += 2.0
    resumed = governor.poll()
    assert resumed is not None and not resumed.paused and resumed.factor == 1.0
    assert governor.unavailable == "zone gone"
    assert any("temperature unreadable (zone gone)" in r.getMessage() for r in caplog.records)


def test_governor_reads_a_jetson_style_thermal_zone(tmp_path: Path) -> None:
    for index, (kind, millidegrees) in enumerate([("CPU-therm", "71500"), ("GPU-therm", "86500")]):
        zone = tmp_path / "sys/class/thermal" / f"thermal_zone{index}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(millidegrees + "\n")
    governor = ThermalGovernor(reader=lambda: read_temperature(tmp_path, run=lambda command: None))
    state = governor.poll()
    assert state is not None and state.paused
    assert state.celsius == 86.5 and state.source == "thermal_zone1 (GPU-therm)"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"slow_from_c": 85.0, "stop_at_c": 75.0}, "slow-down temperature 85 °C must be below"),
        ({"slow_from_c": 80.0, "stop_at_c": 80.0}, "must be below the stop temperature 80 °C"),
        ({"resume_below_c": 85.0}, "resume temperature 85 °C must be below"),
        ({"min_factor": 0.0}, "min factor must be in (0, 1]"),
        ({"min_factor": 1.5}, "min factor must be in (0, 1]"),
        ({"stop_at_c": float("nan")}, "finite"),
    ],
)
def test_policy_validation(kwargs: dict[str, float], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ThermalPolicy(**kwargs)
    assert words in str(caught.value)
    assert "75:85:0.2:80" in str(caught.value)


def test_resume_defaults_to_five_degrees_under_stop() -> None:
    assert ThermalPolicy(slow_from_c=60.0, stop_at_c=70.0).resume_below_c == 65.0
    assert ThermalPolicy(min_factor=1.0).factor(84.0) == 1.0  # slow-down off, pause kept


def test_parse() -> None:
    assert ThermalPolicy.parse("75:85:0.2:80") == ThermalPolicy()
    assert ThermalPolicy.parse(" 70:90 ") == ThermalPolicy(70.0, 90.0, 0.2, 85.0)
    assert ThermalPolicy.parse("70:90:0.5") == ThermalPolicy(70.0, 90.0, 0.5, 85.0)
    assert ThermalPolicy.parse("default") == ThermalPolicy.parse("") == ThermalPolicy()
    assert parse_policy("off") is None and parse_policy("OFF") is None
    assert parse_policy("60:70:0.3:65") == ThermalPolicy(60.0, 70.0, 0.3, 65.0)
    for text, words in [("75", "expected 2 to 4 fields"), ("1:2:3:4:5", "2 to 4"), ("hot:85", "numbers")]:
        with pytest.raises(ConfigError, match="Cannot read thermal policy") as caught:
            ThermalPolicy.parse(text)
        assert words in str(caught.value)
    with pytest.raises(ConfigError, match="resume temperature 90 °C"):
        ThermalPolicy.parse("75:85:0.2:90")

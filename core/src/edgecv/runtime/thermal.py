"""Thermal throttling for ``edgecv run``: slow inference down as the SoC heats, pause it when too hot.

Below ``slow_from_c`` inference runs at full speed; from there the speed factor falls linearly to
``min_factor`` at ``stop_at_c``, where inference pauses until the temperature drops below
``resume_below_c`` (hysteresis, so it does not flap around the limit). The loop divides its inference
rate by the factor (it runs inference on every ``1/factor``-th frame). Temperatures come from
``edgecv.sensors.read_temperature``: the hottest thermal zone (Jetson and Raspberry Pi zones included),
else ``vcgencmd measure_temp``. When the model runs on an accelerator that reads its own chip's
temperature (a ``DeviceSession``: a Hailo chip on its M.2 card heats apart from the SoC), the
governor uses the hotter of the two (``watch``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import attrs

from edgecv.backends import DeviceSession
from edgecv.devices import chip_source, chip_temperature, session_device
from edgecv.errors import ConfigError
from edgecv.sensors import Temperature, Unavailable, read_temperature

log = logging.getLogger(__name__)

FACTOR_STEP = 0.05  # smaller factor moves are not worth a change (and a log line)
_DEFAULT_RESUME_GAP_C = 5.0  # resume_below_c defaults to this far under stop_at_c
_OFF = ("off", "none", "no", "false", "0")

Reader = Callable[[], Temperature | Unavailable]


def _default_resume(policy: ThermalPolicy) -> float:
    return policy.stop_at_c - _DEFAULT_RESUME_GAP_C


@attrs.frozen
class ThermalPolicy:
    """When to slow down and pause; the defaults suit a Jetson or a Raspberry Pi (throttles at ~80-85 °C)."""

    slow_from_c: float = 75.0
    """Full speed below this temperature."""
    stop_at_c: float = 85.0
    """The factor reaches ``min_factor`` here, and inference pauses at or above it."""
    min_factor: float = 0.2
    """The slowest speed before pausing, as a fraction of full speed."""
    resume_below_c: float = attrs.field(default=attrs.Factory(_default_resume, takes_self=True))
    """After a pause, inference resumes only below this (default: 5 °C under ``stop_at_c``, 80 °C)."""

    def __attrs_post_init__(self) -> None:
        hint = "Use SLOW:STOP[:MIN_FACTOR[:RESUME]], e.g. 75:85:0.2:80 (°C, °C, 0-1, °C)."
        values = (self.slow_from_c, self.stop_at_c, self.min_factor, self.resume_below_c)
        if not all(math.isfinite(v) for v in values):
            raise ConfigError(f"Thermal policy values must be finite numbers, got {values}", hint)
        if not self.slow_from_c < self.stop_at_c:
            raise ConfigError(
                f"Thermal policy: slow-down temperature {self.slow_from_c:g} °C must be below "
                f"the stop temperature {self.stop_at_c:g} °C",
                hint,
            )
        if not self.resume_below_c < self.stop_at_c:
            raise ConfigError(
                f"Thermal policy: resume temperature {self.resume_below_c:g} °C must be below "
                f"the stop temperature {self.stop_at_c:g} °C",
                hint,
            )
        if not 0 < self.min_factor <= 1:
            raise ConfigError(f"Thermal policy: min factor must be in (0, 1], got {self.min_factor:g}", hint)

    def factor(self, celsius: float) -> float:
        """1.0 below ``slow_from_c``, falling linearly to ``min_factor`` at ``stop_at_c`` and above."""
        if celsius <= self.slow_from_c:
            return 1.0
        if celsius >= self.stop_at_c:
            return self.min_factor
        share = (celsius - self.slow_from_c) / (self.stop_at_c - self.slow_from_c)
        return 1.0 - (1.0 - self.min_factor) * share

    @classmethod
    def parse(cls, text: str) -> ThermalPolicy:
        """``"SLOW:STOP[:MIN_FACTOR[:RESUME]]"`` (e.g. ``"75:85:0.2:80"``); ``""``/``"default"`` → defaults.

        Omitted fields take their defaults (RESUME: 5 °C under STOP). ``parse_policy`` also accepts ``off``.
        """
        text = text.strip()
        if text.lower() in ("", "default", "on"):
            return cls()
        fields = text.split(":")
        hint = "Use SLOW:STOP[:MIN_FACTOR[:RESUME]], e.g. 75:85:0.2:80, or off."
        if not 2 <= len(fields) <= 4:
            raise ConfigError(f"Cannot read thermal policy {text!r}: expected 2 to 4 fields", hint)
        try:
            numbers = [float(field) for field in fields]
        except ValueError:
            raise ConfigError(
                f"Cannot read thermal policy {text!r}: the fields must be numbers", hint
            ) from None
        return cls(*numbers)  # slow_from_c, stop_at_c[, min_factor[, resume_below_c]]


def parse_policy(text: str) -> ThermalPolicy | None:
    """A policy for the CLI's ``--thermal``; ``None`` for ``off`` (no throttling, no governor)."""
    if text.strip().lower() in _OFF:
        return None
    return ThermalPolicy.parse(text)


@attrs.frozen
class ThrottleState:
    factor: float
    """1.0 is full speed; the loop runs inference on every ``1/factor``-th frame."""
    paused: bool
    """No inference until the temperature drops below ``resume_below_c``."""
    celsius: float | None
    source: str | None
    """The sensor that gave ``celsius``."""
    reason: str
    """For logs, e.g. ``80.0 °C: throttled to 0.60``."""


FULL_SPEED = ThrottleState(1.0, False, None, None, "temperature not read yet: full speed")


def chip_reader(session: DeviceSession) -> Reader:
    """The accelerator's own temperature, named after the device (``"Hailo-8L chip"``)."""
    source = chip_source(session_device(session))

    def read() -> Temperature | Unavailable:
        celsius = chip_temperature(session)
        if celsius is None:
            return Unavailable(f"{source}: no temperature")
        return Temperature(celsius, source)

    return read


def hottest(first: Reader, second: Reader) -> Reader:
    """The hotter of two readings; either alone when the other is unavailable or raises."""

    def read() -> Temperature | Unavailable:
        readings = []
        for reader in (first, second):
            try:
                readings.append(reader())
            except Exception as exc:  # one broken sensor must not hide the other
                readings.append(Unavailable(f"temperature read failed ({type(exc).__name__}: {exc})"))
        found = [r for r in readings if isinstance(r, Temperature)]
        if found:
            return max(found, key=lambda reading: reading.celsius)
        return Unavailable("; ".join(r.reason for r in readings if isinstance(r, Unavailable)))

    return read


class ThermalGovernor:
    """Reads the temperature every ``interval_s`` seconds (``poll()``) and turns it into a ``ThrottleState``.

    Without a sensor, ``unavailable`` says why (logged once) and the state stays at full speed.
    ``watch(session)`` adds an accelerator's chip temperature (the hotter reading wins).
    """

    def __init__(
        self,
        policy: ThermalPolicy | None = None,
        reader: Reader = read_temperature,
        interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or ThermalPolicy()
        self.interval_s = interval_s
        self.state = FULL_SPEED
        self.unavailable: str | None = None
        self._reader = reader
        self._clock = clock
        self._next_read: float | None = None
        self._ever_read = False
        self._watching = False

    def watch(self, session: object) -> None:
        """Read ``session``'s chip too when it is a ``DeviceSession`` (else nothing changes)."""
        if isinstance(session, DeviceSession):
            self._reader = hottest(self._reader, chip_reader(session))
            self._watching = True

    def poll(self) -> ThrottleState | None:
        """The new state when it changed (pause, resume, or a factor move >= 0.05), else ``None``.

        Reads the sensor at most every ``interval_s``; between reads it returns ``None`` at once.
        """
        now = self._clock()
        if self._next_read is not None and now < self._next_read:
            return None
        self._next_read = now + self.interval_s
        try:
            reading = self._reader()
        except Exception as exc:  # a custom reader's failure: throttling must not stop the loop
            reading = Unavailable(f"temperature read failed ({type(exc).__name__}: {exc})")
        if isinstance(reading, Unavailable):
            return self._without_sensor(reading.reason)
        if not self._ever_read:
            log.info("thermal throttling on: %.1f °C from %s", reading.celsius, reading.source)
        self._ever_read = True
        self.unavailable = None
        return self._update(self._decide(reading))

    def _decide(self, reading: Temperature) -> ThrottleState:
        policy, old, celsius = self.policy, self.state, reading.celsius
        paused = celsius >= (policy.resume_below_c if old.paused else policy.stop_at_c)
        if paused:
            return ThrottleState(
                policy.min_factor,
                True,
                celsius,
                reading.source,
                f"{celsius:.1f} °C: paused (resume below {policy.resume_below_c:g} °C)",
            )
        factor = policy.factor(celsius)
        at_bound = factor in (1.0, policy.min_factor)
        if not old.paused and abs(factor - old.factor) < FACTOR_STEP and not at_bound:
            factor = old.factor  # too small a move: keep the factor the loop already uses
        if factor == 1.0:
            reason = f"{celsius:.1f} °C: full speed"
        else:
            reason = f"{celsius:.1f} °C: throttled to {factor:.2f}"
        return ThrottleState(factor, False, celsius, reading.source, reason)

    def _without_sensor(self, reason: str) -> ThrottleState | None:
        if self.unavailable is None:
            if self._ever_read:
                log.warning("temperature unreadable (%s): running at full speed", reason)
            else:
                log.warning("thermal throttling off: %s", reason)
        self.unavailable = reason
        if not self._ever_read and not self._watching:
            self._next_read = math.inf  # no sensor on this device: never look again
        return self._update(ThrottleState(1.0, False, None, None, f"no temperature ({reason}): full speed"))

    def _update(self, new: ThrottleState) -> ThrottleState | None:
        old, self.state = self.state, new
        if new.paused == old.paused and new.factor == old.factor:
            return None
        level = logging.WARNING if new.paused or (old.paused and not new.paused) else logging.INFO
        log.log(level, "thermal: %s", new.reason)
        return new

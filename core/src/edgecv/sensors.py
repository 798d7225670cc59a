"""Power and temperature readings for ``edgecv bench``, from what the kernel or firmware exposes.

Power, first one found:

- NVIDIA Jetson: INA3221 monitors, through hwmon (``/sys/class/hwmon/*/name`` == ``ina3221``;
  ``in<N>_input`` mV times ``curr<N>_input`` mA) or the older ``ina3221x`` IIO driver
  (``/sys/bus/i2c/drivers/ina3221x/*/iio:device*/in_power<N>_input`` mW). The board's input rail
  (``VDD_IN``, ``POM_5V_IN``) is used when labelled, otherwise the sum of the rails;
- Intel (and recent AMD) CPUs: RAPL energy counters
  (``/sys/class/powercap/intel-rapl:<N>/energy_uj``, package domains), integrated over the run and
  corrected for wraparound with ``max_energy_range_uj``. Since CVE-2020-8694 these files are
  readable by root only on most distributions;
- Raspberry Pi 5: ``vcgencmd pmic_read_adc``, the sum of volts times amps over the PMIC rails
  (the SoC and memory rails; not what USB devices draw).

Temperatures: the hottest ``/sys/class/thermal/thermal_zone*/temp`` and ``vcgencmd measure_temp``.

Every reader takes the filesystem root (default ``/``) so that tests can build a fake ``sysfs``
tree; every failure is an ``Unavailable`` carrying the reason, never an exception.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol

import attrs

RAPL_DIR = "sys/class/powercap"
HWMON_DIR = "sys/class/hwmon"
INA3221X_DIR = "sys/bus/i2c/drivers/ina3221x"
THERMAL_DIR = "sys/class/thermal"

# Labels of the rail that carries the whole board's input power (the other rails are part of it).
_INPUT_RAIL = re.compile(r"_IN$", re.IGNORECASE)  # VDD_IN (Orin, Xavier NX), POM_5V_IN (Nano, TX2)
_PMIC_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=\s*([-+0-9.eE]+)\s*[AV]\s*$")
_MEASURE_TEMP = re.compile(r"temp=\s*([-+0-9.]+)")
# Zones reporting outside this range (millidegrees gone wrong, disconnected probes) are ignored.
PLAUSIBLE_CELSIUS = (-40.0, 150.0)

CommandRunner = Callable[[Sequence[str]], str | None]


@attrs.frozen
class Unavailable:
    """A reading that cannot be made here, and why."""

    reason: str


class PowerMeter(Protocol):
    """A source of power readings.

    ``kind == "energy"``: ``read()`` returns joules accumulated since the meter was opened (the
    bench takes differences). ``kind == "power"``: ``read()`` returns the instantaneous watts (the
    bench averages samples taken at most every ``min_interval_s`` seconds).
    """

    source: str
    description: str
    kind: Literal["energy", "power"]
    min_interval_s: float

    def read(self) -> float: ...


def _read(path: Path) -> str:
    """The text of one sysfs file (raises ``OSError``); tests replace it to simulate permissions."""
    return path.read_text().strip()


def _read_number(path: Path) -> float | None:
    try:
        return float(_read(path))
    except (OSError, ValueError):
        return None


def run_command(command: Sequence[str]) -> str | None:
    """stdout of a short command, or ``None`` when it is missing, fails or hangs."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=3, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


# --- Intel RAPL -----------------------------------------------------------------------------------


@attrs.frozen
class RaplDomain:
    name: str
    energy_path: Path
    max_range_uj: int


def rapl_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Energy between two readings of a counter that wraps to 0 after ``max_range_uj``."""
    if after >= before:
        return after - before
    return after + max_range_uj - before


def rapl_domains(root: str | Path = "/") -> list[RaplDomain] | Unavailable:
    """The top-level RAPL package domains whose counters this process can read."""
    folder = Path(root, RAPL_DIR)
    zones = sorted(p for p in folder.glob("intel-rapl:*") if p.name.count(":") == 1)
    if not zones:
        return Unavailable(
            f"no RAPL energy counters ({folder}/intel-rapl:* absent: not exposed on this host or VM)"
        )
    domains: list[RaplDomain] = []
    unreadable: list[str] = []
    for zone in zones:
        try:
            name = _read(zone / "name")
        except OSError:
            name = zone.name
        try:
            int(_read(zone / "energy_uj"))
            max_range = int(_read(zone / "max_energy_range_uj"))
        except PermissionError:
            unreadable.append(str(zone / "energy_uj"))
            continue
        except (OSError, ValueError):
            continue
        domains.append(RaplDomain(name, zone / "energy_uj", max_range))
    if not domains:
        if unreadable:
            return Unavailable(
                f"RAPL energy counters are readable by root only ({unreadable[0]}; CVE-2020-8694): "
                "run as root or make energy_uj readable"
            )
        return Unavailable(f"RAPL energy counters under {folder} cannot be read")
    packages = [d for d in domains if d.name.startswith("package")]
    # psys (platform) already contains the packages: count one or the other, never both.
    return packages or domains


class RaplMeter:
    """Joules used by the RAPL package domains since the meter was opened (wraparound handled)."""

    source = "rapl"
    kind: Literal["energy", "power"] = "energy"
    min_interval_s = 0.0

    def __init__(self, domains: Sequence[RaplDomain]) -> None:
        self.domains = tuple(domains)
        self.description = "RAPL " + "+".join(d.name for d in self.domains) + " (whole CPU package)"
        self._last = [self._raw(d) for d in self.domains]
        self._joules = 0.0

    @staticmethod
    def _raw(domain: RaplDomain) -> int:
        return int(_read(domain.energy_path))

    def read(self) -> float:
        for index, domain in enumerate(self.domains):
            now = self._raw(domain)
            self._joules += rapl_delta_uj(self._last[index], now, domain.max_range_uj) / 1e6
            self._last[index] = now
        return self._joules


def open_rapl(root: str | Path = "/") -> RaplMeter | Unavailable:
    domains = rapl_domains(root)
    if isinstance(domains, Unavailable):
        return domains
    try:
        return RaplMeter(domains)
    except (OSError, ValueError) as exc:
        return Unavailable(f"RAPL energy counters cannot be read ({exc})")


# --- Jetson INA3221 -------------------------------------------------------------------------------


@attrs.frozen
class PowerChannel:
    """One monitored rail: watts = ``power_path`` mW, or ``volts_path`` mV x ``amps_path`` mA."""

    label: str
    power_path: Path | None = None
    volts_path: Path | None = None
    amps_path: Path | None = None

    def watts(self) -> float:
        if self.power_path is not None:
            return float(_read(self.power_path)) / 1e3
        assert self.volts_path is not None and self.amps_path is not None
        return float(_read(self.volts_path)) * float(_read(self.amps_path)) / 1e6


def _label(path: Path, fallback: str) -> str:
    try:
        return _read(path) or fallback
    except OSError:
        return fallback


def _hwmon_channels(root: Path) -> list[PowerChannel]:
    channels = []
    for device in sorted(Path(root, HWMON_DIR).glob("hwmon*")):
        try:
            if _read(device / "name") != "ina3221":
                continue
        except OSError:
            continue
        for current in sorted(device.glob("curr*_input")):
            index = current.name[len("curr") : -len("_input")]
            volts = device / f"in{index}_input"
            if volts.exists():
                label = _label(device / f"in{index}_label", f"{device.name}/in{index}")
                channels.append(PowerChannel(label, volts_path=volts, amps_path=current))
    return channels


def _iio_channels(root: Path) -> list[PowerChannel]:
    channels = []
    for device in sorted(Path(root, INA3221X_DIR).glob("*/iio:device*")):
        for power in sorted(device.glob("in_power*_input")):
            index = power.name[len("in_power") : -len("_input")]
            label = _label(device / f"rail_name_{index}", f"{device.name}/in_power{index}")
            channels.append(PowerChannel(label, power_path=power))
    return channels


def ina3221_channels(root: str | Path = "/") -> list[PowerChannel] | Unavailable:
    """The rails to sum: the board input rail when one is labelled, else every rail found."""
    channels = _hwmon_channels(Path(root)) + _iio_channels(Path(root))
    if not channels:
        return Unavailable("no INA3221 power monitor (not a Jetson)")
    readable = []
    for channel in channels:
        try:
            channel.watts()
        except (OSError, ValueError):
            continue
        readable.append(channel)
    if not readable:
        return Unavailable(f"INA3221 power monitor found but unreadable ({channels[0].label})")
    inputs = [c for c in readable if _INPUT_RAIL.search(c.label)]
    return inputs or readable


class Ina3221Meter:
    source = "ina3221"
    kind: Literal["energy", "power"] = "power"
    min_interval_s = 0.0

    def __init__(self, channels: Sequence[PowerChannel]) -> None:
        self.channels = tuple(channels)
        self.description = "INA3221 " + "+".join(c.label for c in self.channels)

    def read(self) -> float:
        return sum(c.watts() for c in self.channels)


def open_ina3221(root: str | Path = "/") -> Ina3221Meter | Unavailable:
    channels = ina3221_channels(root)
    return channels if isinstance(channels, Unavailable) else Ina3221Meter(channels)


# --- Raspberry Pi 5 PMIC --------------------------------------------------------------------------


def parse_pmic_adc(text: str) -> float | None:
    """Watts from ``vcgencmd pmic_read_adc``: the sum of volts x amps over rails that report both."""
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        match = _PMIC_LINE.match(line)
        if match is None:
            continue
        rail, unit, value = match.groups()
        (amps if unit == "A" else volts)[rail] = float(value)
    rails = amps.keys() & volts.keys()
    if not rails:
        return None
    return sum(amps[r] * volts[r] for r in rails)


class Pi5PmicMeter:
    source = "pi5-pmic"
    description = "Raspberry Pi PMIC rails (vcgencmd pmic_read_adc; excludes USB/peripheral 5 V)"
    kind: Literal["energy", "power"] = "power"
    min_interval_s = 0.5  # vcgencmd is a process start: sample sparsely, between timed calls

    def __init__(self, run: CommandRunner = run_command) -> None:
        self._run = run

    def read(self) -> float:
        watts = parse_pmic_adc(self._run(["vcgencmd", "pmic_read_adc"]) or "")
        if watts is None:
            raise OSError("vcgencmd pmic_read_adc gave no rail readings")
        return watts


def open_pi5(run: CommandRunner = run_command) -> Pi5PmicMeter | Unavailable:
    output = run(["vcgencmd", "pmic_read_adc"])
    if output is None:
        return Unavailable("no `vcgencmd pmic_read_adc` (not a Raspberry Pi 5)")
    if parse_pmic_adc(output) is None:
        return Unavailable("`vcgencmd pmic_read_adc` reports no rails (needs a Raspberry Pi 5 firmware)")
    return Pi5PmicMeter(run)


def open_power_meter(root: str | Path = "/", run: CommandRunner = run_command) -> PowerMeter | Unavailable:
    """The first power source found (Jetson INA3221, RAPL, Raspberry Pi 5), or why there is none."""
    reasons = []
    for opened in (open_ina3221(root), open_rapl(root), open_pi5(run)):
        if not isinstance(opened, Unavailable):
            return opened
        reasons.append(opened.reason)
    return Unavailable("; ".join(reasons))


# --- Temperatures ---------------------------------------------------------------------------------


@attrs.frozen
class Temperature:
    celsius: float
    source: str


def thermal_zones(root: str | Path = "/") -> dict[str, float]:
    """Degrees Celsius per readable thermal zone, as ``"thermal_zone0 (cpu-thermal)"``."""
    found = {}
    for zone in sorted(Path(root, THERMAL_DIR).glob("thermal_zone*")):
        millidegrees = _read_number(zone / "temp")
        if millidegrees is None:
            continue
        celsius = millidegrees / 1e3
        if not PLAUSIBLE_CELSIUS[0] <= celsius <= PLAUSIBLE_CELSIUS[1]:
            continue
        kind = _label(zone / "type", "")
        found[f"{zone.name} ({kind})" if kind else zone.name] = celsius
    return found


def parse_measure_temp(text: str) -> float | None:
    """Degrees Celsius from ``vcgencmd measure_temp`` (``temp=48.3'C``)."""
    match = _MEASURE_TEMP.search(text)
    return float(match.group(1)) if match else None


def read_temperature(root: str | Path = "/", run: CommandRunner = run_command) -> Temperature | Unavailable:
    """The hottest thermal zone, else the firmware's SoC temperature, else why neither is readable."""
    zones = thermal_zones(root)
    if zones:
        hottest = max(zones, key=lambda name: zones[name])
        return Temperature(zones[hottest], hottest)
    celsius = parse_measure_temp(run(["vcgencmd", "measure_temp"]) or "")
    if celsius is not None:
        return Temperature(celsius, "vcgencmd measure_temp")
    return Unavailable(
        f"no readable thermal zone ({Path(root, THERMAL_DIR)}/thermal_zone*/temp) and no vcgencmd"
    )

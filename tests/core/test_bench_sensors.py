"""Power and temperature readers on fake sysfs trees (the file formats), plus the real paths here.

RAPL, INA3221 and Raspberry Pi PMIC hardware cannot exist on a CI machine, so their files are
built in ``tmp_path`` exactly as the kernel lays them out; the real-path calls at the end run the
same code on this machine and must answer with a reading or a reason, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from edgecv import sensors
from edgecv.sensors import Unavailable

PMIC_ADC = """\
   3V7_WL_SW_A current(0)=0.10000000A
     3V3_SYS_A current(1)=0.20000000A
     1V8_SYS_A current(2)=0.30000000A
    VDD_CORE_A current(7)=2.00000000A
   3V7_WL_SW_V volt(8)=3.70000000V
     3V3_SYS_V volt(9)=3.30000000V
     1V8_SYS_V volt(10)=1.80000000V
    VDD_CORE_V volt(15)=0.80000000V
       EXT5V_V volt(24)=5.10000000V
        BATT_V volt(25)=0.00000000V
"""
PMIC_WATTS = 0.1 * 3.7 + 0.2 * 3.3 + 0.3 * 1.8 + 2.0 * 0.8  # EXT5V has no current: not counted


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def rapl_zone(root: Path, zone: str, name: str, energy_uj: int, max_range: int = 1_000_000) -> Path:
    folder = root / "sys/class/powercap" / zone
    write(folder / "name", name)
    write(folder / "energy_uj", str(energy_uj))
    write(folder / "max_energy_range_uj", str(max_range))
    return folder


def no_command(command: Sequence[str]) -> str | None:
    return None


# --- RAPL -----------------------------------------------------------------------------------------


def test_rapl_delta_handles_wraparound() -> None:
    assert sensors.rapl_delta_uj(100, 350, 1000) == 250
    assert sensors.rapl_delta_uj(900, 100, 1000) == 200
    assert sensors.rapl_delta_uj(500, 500, 1000) == 0


def test_rapl_uses_package_domains_only(tmp_path: Path) -> None:
    rapl_zone(tmp_path, "intel-rapl:0", "package-0", 1000)
    rapl_zone(tmp_path, "intel-rapl:1", "package-1", 2000)
    rapl_zone(tmp_path, "intel-rapl:0:0", "core", 500)  # a subzone, part of package-0
    rapl_zone(tmp_path, "intel-rapl:2", "psys", 9000)  # the platform, which contains the packages
    domains = sensors.rapl_domains(tmp_path)
    assert not isinstance(domains, Unavailable)
    assert [d.name for d in domains] == ["package-0", "package-1"]


def test_rapl_meter_integrates_across_a_wraparound(tmp_path: Path) -> None:
    zone = rapl_zone(tmp_path, "intel-rapl:0", "package-0", 900_000, max_range=1_000_000)
    meter = sensors.open_rapl(tmp_path)
    assert isinstance(meter, sensors.RaplMeter)
    assert (meter.source, meter.kind) == ("rapl", "energy")
    assert meter.read() == 0.0
    write(zone / "energy_uj", "950000")
    assert meter.read() == pytest.approx(0.05)
    write(zone / "energy_uj", "150000")  # wrapped: 50 000 to the top, then 150 000
    assert meter.read() == pytest.approx(0.25)


def test_rapl_psys_alone_is_used(tmp_path: Path) -> None:
    rapl_zone(tmp_path, "intel-rapl:0", "psys", 10)
    domains = sensors.rapl_domains(tmp_path)
    assert not isinstance(domains, Unavailable)
    assert [d.name for d in domains] == ["psys"]


def test_rapl_absent_says_so(tmp_path: Path) -> None:
    result = sensors.open_rapl(tmp_path)
    assert isinstance(result, Unavailable)
    assert "no RAPL energy counters" in result.reason


def test_rapl_root_only_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rapl_zone(tmp_path, "intel-rapl:0", "package-0", 1000)
    real_read = sensors._read

    def denied(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path)

    # chmod cannot simulate this when the tests run as root, so the read itself is denied.
    monkeypatch.setattr(sensors, "_read", denied)
    result = sensors.open_rapl(tmp_path)
    assert isinstance(result, Unavailable)
    assert "root only" in result.reason and "energy_uj" in result.reason


# --- Jetson INA3221 -------------------------------------------------------------------------------


def hwmon_ina3221(root: Path, rails: dict[int, tuple[str | None, int, int]]) -> Path:
    """rails: channel -> (label, millivolts, milliamps)."""
    device = root / "sys/class/hwmon/hwmon3"
    write(device / "name", "ina3221")
    for channel, (label, millivolts, milliamps) in rails.items():
        write(device / f"in{channel}_input", str(millivolts))
        write(device / f"curr{channel}_input", str(milliamps))
        if label is not None:
            write(device / f"in{channel}_label", label)
    # Shunt voltages (in4..in6) have no current: they are not rails.
    write(device / "in4_input", "12")
    return device


def test_ina3221_hwmon_prefers_the_input_rail(tmp_path: Path) -> None:
    write(tmp_path / "sys/class/hwmon/hwmon0/name", "cpu_thermal")
    hwmon_ina3221(tmp_path, {1: ("VDD_IN", 5000, 1200), 2: ("VDD_CPU_GPU_CV", 5000, 400)})
    meter = sensors.open_ina3221(tmp_path)
    assert isinstance(meter, sensors.Ina3221Meter)
    assert meter.kind == "power"
    assert meter.read() == pytest.approx(6.0)
    assert "VDD_IN" in meter.description


def test_ina3221_hwmon_sums_rails_without_an_input_rail(tmp_path: Path) -> None:
    hwmon_ina3221(tmp_path, {1: ("VDD_GPU_SOC", 5000, 1000), 2: (None, 5000, 200)})
    meter = sensors.open_ina3221(tmp_path)
    assert isinstance(meter, sensors.Ina3221Meter)
    assert meter.read() == pytest.approx(6.0)


def test_ina3221x_iio_driver(tmp_path: Path) -> None:
    device = tmp_path / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    for index, (rail, milliwatts) in enumerate(
        [("POM_5V_IN", 3200), ("POM_5V_GPU", 800), ("POM_5V_CPU", 900)]
    ):
        write(device / f"rail_name_{index}", rail)
        write(device / f"in_power{index}_input", str(milliwatts))
    meter = sensors.open_ina3221(tmp_path)
    assert isinstance(meter, sensors.Ina3221Meter)
    assert meter.read() == pytest.approx(3.2)


def test_ina3221_absent_says_so(tmp_path: Path) -> None:
    result = sensors.open_ina3221(tmp_path)
    assert isinstance(result, Unavailable)
    assert "INA3221" in result.reason


# --- Raspberry Pi 5 -------------------------------------------------------------------------------


def test_pmic_adc_parsing() -> None:
    assert sensors.parse_pmic_adc(PMIC_ADC) == pytest.approx(PMIC_WATTS)
    assert sensors.parse_pmic_adc('error=1 error_msg="Command not registered"') is None


def test_pi5_meter_with_a_fake_vcgencmd() -> None:
    calls: list[list[str]] = []

    def vcgencmd(command: Sequence[str]) -> str | None:
        calls.append(list(command))
        return PMIC_ADC

    meter = sensors.open_pi5(vcgencmd)
    assert isinstance(meter, sensors.Pi5PmicMeter)
    assert meter.read() == pytest.approx(PMIC_WATTS)
    assert calls[0] == ["vcgencmd", "pmic_read_adc"]
    assert meter.min_interval_s > 0, "a process start per sample must not run between every call"


def test_pi5_reasons() -> None:
    missing = sensors.open_pi5(no_command)
    assert isinstance(missing, Unavailable) and "vcgencmd" in missing.reason
    old_firmware = sensors.open_pi5(lambda command: 'error=2 error_msg="Invalid arguments"')
    assert isinstance(old_firmware, Unavailable) and "no rails" in old_firmware.reason


def test_power_meter_choice_and_combined_reason(tmp_path: Path) -> None:
    result = sensors.open_power_meter(tmp_path, no_command)
    assert isinstance(result, Unavailable)
    for fragment in ("INA3221", "RAPL", "vcgencmd"):
        assert fragment in result.reason
    rapl_zone(tmp_path, "intel-rapl:0", "package-0", 5)
    assert isinstance(sensors.open_power_meter(tmp_path, no_command), sensors.RaplMeter)
    hwmon_ina3221(tmp_path, {1: ("VDD_IN", 5000, 1000)})
    assert isinstance(sensors.open_power_meter(tmp_path, no_command), sensors.Ina3221Meter)


# --- Temperatures ---------------------------------------------------------------------------------


def thermal_zone(root: Path, index: int, kind: str, millidegrees: str) -> None:
    zone = root / f"sys/class/thermal/thermal_zone{index}"
    write(zone / "type", kind)
    write(zone / "temp", millidegrees)


def test_thermal_zones_hottest_and_bogus_values(tmp_path: Path) -> None:
    thermal_zone(tmp_path, 0, "acpitz", "27800")
    thermal_zone(tmp_path, 1, "x86_pkg_temp", "61000")
    thermal_zone(tmp_path, 2, "iwlwifi_1", "-274000")  # disconnected sensor
    thermal_zone(tmp_path, 3, "broken", "N/A")
    zones = sensors.thermal_zones(tmp_path)
    assert zones == {"thermal_zone0 (acpitz)": 27.8, "thermal_zone1 (x86_pkg_temp)": 61.0}
    hottest = sensors.read_temperature(tmp_path, no_command)
    assert hottest == sensors.Temperature(61.0, "thermal_zone1 (x86_pkg_temp)")


def test_temperature_from_vcgencmd_when_no_zone(tmp_path: Path) -> None:
    assert sensors.parse_measure_temp("temp=48.3'C\n") == 48.3
    result = sensors.read_temperature(tmp_path, lambda command: "temp=52.6'C")
    assert result == sensors.Temperature(52.6, "vcgencmd measure_temp")


def test_temperature_unavailable_reason(tmp_path: Path) -> None:
    result = sensors.read_temperature(tmp_path, no_command)
    assert isinstance(result, Unavailable)
    assert "thermal zone" in result.reason and "vcgencmd" in result.reason


# --- This machine ---------------------------------------------------------------------------------


def test_real_paths_answer_with_a_reading_or_a_reason() -> None:
    meter = sensors.open_power_meter()
    if isinstance(meter, Unavailable):
        assert meter.reason
    else:
        assert meter.read() >= 0
    temperature = sensors.read_temperature()
    if isinstance(temperature, Unavailable):
        assert temperature.reason
    else:
        assert -40 <= temperature.celsius <= 150

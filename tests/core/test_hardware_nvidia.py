"""The NVIDIA stack in ``edgecv doctor`` and the bench device header, on a fake sysroot and fake commands."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from edgecv import hardware
from edgecv.bench.device import describe_device, device_line
from edgecv.cli.doctor import doctor_lines, doctor_report
from edgecv.testing.cli import run_edgecv

ORIN_MODEL = "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
TEGRA_RELEASE = (
    "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13"
)
NVPMODEL = "NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN_SUPER\n2\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def orin_sysroot(root: Path, *, pinned: bool) -> Path:
    """A Jetson Orin Nano as sysfs shows it: CPUs and GPU pinned at max (jetson_clocks) or not."""
    write(root / "proc/device-tree/model", ORIN_MODEL + "\x00")
    write(root / "etc/nv_tegra_release", TEGRA_RELEASE + "\n")
    for cpu in range(6):
        cpufreq = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        write(cpufreq / "scaling_min_freq", "1728000" if pinned else "729600")
        write(cpufreq / "scaling_max_freq", "1728000")  # capped by the power mode ...
        write(cpufreq / "cpuinfo_max_freq", "1728000" if cpu else "2035200")  # ... below the chip's max
    gpu = root / "sys/class/devfreq/17000000.gpu"
    write(gpu / "min_freq", "1020000000" if pinned else "306000000")
    write(gpu / "max_freq", "1020000000")
    write(root / "sys/class/devfreq/3d00000.pcie/min_freq", "0")  # not the GPU: ignored
    write(root / "sys/class/devfreq/3d00000.pcie/max_freq", "1")
    return root


def runner(answers: dict[str, str]) -> hardware.CommandRunner:
    def run(command: Sequence[str]) -> str | None:
        return answers.get(command[0])

    return run


def test_doctor_on_a_jetson_orin_reports_model_l4t_power_mode_and_clocks(tmp_path: Path) -> None:
    root = orin_sysroot(tmp_path, pinned=True)
    report = doctor_report(root, runner({"nvpmodel": NVPMODEL}))
    assert json.loads(json.dumps(report))["nvidia"] == {
        "gpu": None,
        "gpu_count": 0,
        "compute_capability": "8.7",  # from the board: no nvidia-smi
        "driver": None,
        "cuda": None,
        "tensorrt": None,
        "jetson": {
            "model": ORIN_MODEL,
            "l4t": "R36.4.0",
            "power_mode": "MAXN_SUPER",
            "jetson_clocks": True,
            "jetson_clocks_basis": "on: checked 7 clocks (min == max frequency in sysfs)",
        },
    }
    assert report["board"] == ORIN_MODEL
    text = "\n".join(doctor_lines(report))
    assert "nvidia        integrated GPU (compute 8.7)" in text
    assert f"jetson        {ORIN_MODEL}; L4T R36.4.0; power mode MAXN_SUPER; jetson_clocks on" in text


def test_jetson_clocks_off_when_any_clock_can_drop(tmp_path: Path) -> None:
    root = orin_sysroot(tmp_path, pinned=False)
    clocks, basis = hardware.jetson_clocks(root)
    assert clocks is False
    assert basis.startswith("off: cpu0, cpu1, cpu2 below maximum")
    write(root / "sys/class/devfreq/17000000.gpu/min_freq", "1020000000")
    for cpu in range(6):
        write(root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_min_freq", "1728000")
    assert hardware.jetson_clocks(root)[0] is True
    write(root / "sys/class/devfreq/17000000.gpu/min_freq", "306000000")  # the GPU alone counts
    assert hardware.jetson_clocks(root) == (
        False,
        "off: gpu 17000000.gpu below maximum; checked 7 clocks (min == max frequency in sysfs)",
    )
    assert hardware.jetson_clocks(tmp_path / "empty")[0] is None


def test_l4t_and_power_mode_parsing(tmp_path: Path) -> None:
    write(
        tmp_path / "etc/nv_tegra_release", "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref\n"
    )
    assert hardware.l4t_release(tmp_path) == "R32.7.1"
    write(tmp_path / "etc/nv_tegra_release", "garbage\n")
    assert hardware.l4t_release(tmp_path) is None
    assert hardware.power_mode(runner({"nvpmodel": "NV Power Mode: 15W\n1\n"})) == "15W"
    assert hardware.power_mode(runner({})) is None  # nvpmodel absent, failed or timed out


def test_nvidia_smi_answer_gives_gpu_name_compute_capability_and_driver(tmp_path: Path) -> None:
    write(
        tmp_path / "usr/local/cuda/version.json",
        json.dumps({"cuda": {"name": "CUDA SDK", "version": "12.6.77"}}),
    )
    smi = "NVIDIA H200, 9.0, 570.124.06\nNVIDIA H200, 9.0, 570.124.06\n"
    report = doctor_report(tmp_path, runner({"nvidia-smi": smi}))
    nvidia = report["nvidia"]
    assert (nvidia["gpu"], nvidia["gpu_count"], nvidia["compute_capability"], nvidia["driver"]) == (
        "NVIDIA H200",
        2,
        "9.0",
        "570.124.06",
    )
    assert nvidia["cuda"] == "12.6.77" and nvidia["jetson"] is None
    text = "\n".join(doctor_lines(report))
    assert "nvidia        NVIDIA H200 x2 (compute 9.0, driver 570.124.06); CUDA 12.6.77" in text
    assert "jetson " not in text
    device = describe_device(tmp_path, runner({"nvidia-smi": smi}))
    assert "NVIDIA H200 x2 (compute 9.0, driver 570.124.06); CUDA 12.6.77" in device_line(device)
    # Old drivers answer [N/A] for compute_cap; the older CUDA version.txt still gives the version.
    (tmp_path / "usr/local/cuda/version.json").unlink()
    write(tmp_path / "usr/local/cuda/version.txt", "CUDA Version 10.2.89\n")
    old = hardware.nvidia_report(tmp_path, runner({"nvidia-smi": "Tesla T4, [N/A], 470.57.02\n"}))
    assert (old["gpu"], old["compute_capability"], old["cuda"]) == ("Tesla T4", None, "10.2.89")


def test_bench_device_header_shows_the_jetson_state(tmp_path: Path) -> None:
    root = orin_sysroot(tmp_path, pinned=False)
    device = describe_device(root, runner({"nvpmodel": NVPMODEL}))
    assert device["nvidia"]["jetson"]["l4t"] == "R36.4.0"
    line = device_line(device)
    assert f"{ORIN_MODEL}; " in line
    assert line.endswith(
        "integrated GPU (compute 8.7); L4T R36.4.0; power mode MAXN_SUPER; jetson_clocks off"
    )
    old_record = {key: value for key, value in device.items() if key != "nvidia"}
    assert "L4T" not in device_line(old_record)  # reports saved before these fields still print


def test_tensorrt_version_from_jetpacks_module_but_not_from_stubs(tmp_path: Path) -> None:
    stubs = tmp_path / "stubs"
    write(stubs / "tensorrt/__init__.pyi", "__version__: str\n")  # what tensorrt-stubs installs
    assert hardware.tensorrt_version([str(stubs)]) is None
    jetpack = tmp_path / "dist-packages"
    write(jetpack / "tensorrt/__init__.py", 'from .tensorrt import *\n__version__ = "10.3.0"\n')
    assert hardware.tensorrt_version([str(jetpack), str(stubs)]) == "10.3.0"


def test_doctor_here_has_no_nvidia_stack_and_stays_fast() -> None:
    assert hardware.tensorrt_version() is None  # tensorrt-stubs is installed here: not TensorRT
    started = time.perf_counter()
    result = run_edgecv("doctor", "--json")
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    nvidia = json.loads(result.stdout)["nvidia"]
    assert nvidia["gpu"] is None and nvidia["tensorrt"] is None and nvidia["jetson"] is None
    assert elapsed < 10, elapsed
    text = run_edgecv("doctor")
    assert "nvidia        none (no NVIDIA GPU, CUDA or TensorRT found)" in text.stdout

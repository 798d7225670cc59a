"""Every bench report names the CPU it ran on and the ISA extensions the runtimes' kernels depend on,
read from /proc/cpuinfo (x86 ``flags``, ARM ``Features``) under a fake system root."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgecv import hardware
from edgecv.bench.device import describe_device, device_line
from edgecv.bench.report import load_line

XEON = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C\n"
    "flags\t\t: fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512_vnni avx512_bf16 avx512_fp16 "
    "amx_bf16 amx_tile amx_int8\n"
)

PI5 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""

GRAVITON3 = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimddp sve i8mm bf16 sve2
"""


def no_commands(command: Sequence[str]) -> str | None:
    return None


def sysroot(tmp_path: Path, cpuinfo: str) -> Path:
    (tmp_path / "proc").mkdir(parents=True)
    (tmp_path / "proc" / "cpuinfo").write_text(cpuinfo)
    return tmp_path


def test_an_intel_cpu_with_amx_is_named_with_its_extensions(tmp_path: Path) -> None:
    device = describe_device(sysroot(tmp_path, XEON), no_commands)
    assert device["cpu"] == "Intel(R) Xeon(R) Platinum 8488C"
    features = "avx2 fma f16c avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_tile amx_int8 amx_bf16"
    assert device["cpu_features"] == features.split()
    line = device_line(device)
    assert line.startswith("Intel(R) Xeon(R) Platinum 8488C (")
    assert f"; ISA {features}" in line


def test_arm_features_name_dotprod_i8mm_and_sve(tmp_path: Path) -> None:
    pi5 = sysroot(tmp_path / "pi5", PI5)
    assert hardware.cpu_name(pi5) == "BCM2835"
    assert hardware.cpu_flags(pi5) == ["asimd", "asimddp", "fphp", "asimdhp"]
    graviton = sysroot(tmp_path / "graviton3", GRAVITON3)
    assert hardware.cpu_flags(graviton) == [
        "asimd",
        "asimddp",
        "i8mm",
        "fphp",
        "asimdhp",
        "bf16",
        "sve",
        "sve2",
    ]


def test_a_cpu_without_listed_extensions_says_so(tmp_path: Path) -> None:
    device = describe_device(sysroot(tmp_path, "model name\t: Old CPU\nflags\t\t: fpu sse2\n"), no_commands)
    assert device["cpu_features"] == []
    assert "; ISA without the extensions edgecv lists" in device_line(device)
    # A record written before the features were recorded still prints.
    assert "ISA" not in device_line({k: v for k, v in device.items() if k != "cpu_features"})


def test_this_machine_and_its_load() -> None:
    device = describe_device()
    assert device["cpu"] and f"; ISA {' '.join(device['cpu_features'])}" in device_line(device)
    line = load_line({"load_average_before": [1.5, 1.0, 0.5], "load_average_after": [2.0, 1.0, 0.5]})
    assert line == "load avg     1.5 before, 2.0 after (1 min; other processes add noise)"
    assert load_line({"load_average_before": None}) is None

"""The ``hailo`` plugin as installed: registration, availability on this machine, CLI errors.

These run against this machine as it is (no HailoRT, no Hailo device in CI); nothing here needs
the fakes.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from edgecv.backend import Availability
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv_hailo import runtime
from edgecv_hailo.nms import HAILO_NMS


@pytest.fixture
def unavailable_here() -> Availability:
    """This machine's availability; the CLI tests expect what CI has: no HailoRT or no device."""
    status = runtime.availability()
    if status.available:
        pytest.skip("HailoRT and a Hailo device are present here: the backend is available")
    return status


def test_registers_backend_exporter_and_decoder(fresh_plugins: ModuleType) -> None:
    backend = next(b for b in fresh_plugins.backends() if b.name == "hailo")
    assert backend.formats == (".hef",) and backend.plugin == "hailo"
    assert backend.install_hint == runtime.INSTALL_HINT
    exporter = next(e for e in fresh_plugins.exporters() if e.format == "hailo")
    assert exporter.plugin == "hailo"
    # Plugins' decoders are tried before the core's, and hailo-nms claims only its own layout.
    assert fresh_plugins.decoders()[0] is HAILO_NMS


def test_install_hint_is_apt_on_a_pi_and_the_developer_zone_elsewhere() -> None:
    assert "sudo apt install hailo-all" in runtime.INSTALL_HINT
    assert "https://hailo.ai/developer-zone/" in runtime.INSTALL_HINT
    assert "pip install hailo" not in runtime.INSTALL_HINT  # HailoRT is not on PyPI


def test_backends_lists_hailo_unavailable_with_reason_and_hint(unavailable_here: Availability) -> None:
    result = run_edgecv("backends")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("hailo "))
    assert f"unavailable: {unavailable_here.reason} ({unavailable_here.hint})" in line


def test_predict_on_a_hef_is_one_error_line(
    unavailable_here: Availability, tmp_path: Path, bus_path: Path
) -> None:
    hef = tmp_path / "x.hef"
    hef.write_bytes(b"not read: the backend is missing")
    result = run_edgecv("predict", bus_path, "--model", hef)
    assert_one_line_error(
        result,
        "Backend 'hailo' reads x.hef but is not available",
        unavailable_here.reason,
        unavailable_here.hint,
    )


def test_availability_needs_the_module_and_a_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    status = runtime.availability(dev)
    assert not status.available and "no Hailo device found" in status.reason
    (dev / "hailo0").touch()
    package = tmp_path / "site" / "hailo_platform"
    package.mkdir(parents=True)
    # Found, never imported: the check must stay cheap and safe with a broken install.
    (package / "__init__.py").write_text("raise RuntimeError('imported by the availability check')\n")
    monkeypatch.syspath_prepend(str(package.parent))
    assert runtime.availability(dev) == Availability(True)

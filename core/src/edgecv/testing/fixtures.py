"""pytest fixtures for edgecv's own test suites and backend packages' (a ``pytest11`` plugin).

Installed with edgecv-core, pytest loads it in any project that has edgecv-core installed
(``-p no:edgecv`` turns it off). Assets are found through ``EDGECV_ASSETS`` or
``../shared/assets`` (then ``./shared/assets``) from the working directory, as
``edgecv.registry`` finds them. Missing assets FAIL the run: a skipped test would hide that
nothing was checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from edgecv.registry import assets_dir

# Variables that change how edgecv resolves models or loads plugins; each test starts without them.
EDGECV_VARIABLES = (
    "EDGECV_PLUGINS",
    "EDGECV_DISABLE_PLUGINS",
    "EDGECV_MODEL_DIR",
    "EDGECV_REGISTRY",
    "EDGECV_MODEL_MIRROR_URL",
    "EDGECV_CACHE_DIR",
    "EDGECV_DOWNLOAD_DEADLINE_S",
    "EDGECV_ALLOW_FILE_URLS",
)


@pytest.fixture(scope="session")
def assets() -> Path:
    """The assets folder (``Path``): models/, images/, coco128/, videos/, SOURCES.md."""
    found = assets_dir()
    if found is None or not (found / "SOURCES.md").is_file():
        pytest.fail(
            f"edgecv test assets not found (EDGECV_ASSETS={os.environ.get('EDGECV_ASSETS')!r}, "
            f"cwd={Path.cwd()}); set EDGECV_ASSETS or run pytest from the repository root "
            "next to shared/assets"
        )
    return found.resolve()


@pytest.fixture(scope="session")
def models(assets: Path) -> Path:
    """``<assets>/models`` (``Path``): the reference models named in SOURCES.md."""
    return _required(assets / "models")


@pytest.fixture(scope="session")
def bus_path(assets: Path) -> Path:
    """``<assets>/images/bus.jpg`` (``Path``), the reference image."""
    return _required(assets / "images" / "bus.jpg")


@pytest.fixture(scope="session")
def zidane_path(assets: Path) -> Path:
    """``<assets>/images/zidane.jpg`` (``Path``)."""
    return _required(assets / "images" / "zidane.jpg")


def _required(path: Path) -> Path:
    """A missing asset fails the test: a skip would hide that nothing was checked."""
    if not path.exists():
        pytest.fail(f"{path} is missing")
    return path


@pytest.fixture(autouse=True)
def clean_edgecv_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No inherited EDGECV_* settings, and a private (empty) download cache for every test."""
    for name in EDGECV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EDGECV_CACHE_DIR", str(tmp_path_factory.mktemp("edgecv-cache")))


@pytest.fixture
def fresh_plugins() -> Iterator[ModuleType]:
    """A plugin manager rebuilt from entry points for this test, and forgotten afterwards."""
    from edgecv import plugins

    plugins.reset()
    yield plugins
    plugins.reset()

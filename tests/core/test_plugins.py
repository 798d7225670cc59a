"""Plugin discovery through real entry points (fake distributions on PYTHONPATH, in subprocesses),
isolation of broken plugins, EDGECV_PLUGINS / EDGECV_DISABLE_PLUGINS, and in-process app plugins."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import edgecv
from edgecv.detections import Detections

GOOD_PLUGIN = """
from edgecv.backend import Backend, Exporter, hookimpl

def open_session(path, options):
    raise NotImplementedError

@hookimpl
def edgecv_register_backends(register):
    register(Backend(name="fakert", open=open_session, formats=(".fake",), priority=5, description="test"))

@hookimpl
def edgecv_register_exporters(register):
    register(Exporter(format="fakefmt", export=lambda source, output, options: output))
"""

IMPORT_BROKEN_PLUGIN = """
raise RuntimeError("boom at import")
"""

REGISTER_BROKEN_PLUGIN = """
from edgecv import hookimpl

@hookimpl
def edgecv_register_backends(register):
    raise ValueError("cannot declare backends")
"""

PROBE = textwrap.dedent(
    """
    import json, sys, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from edgecv import plugins
        records = plugins.plugin_records()
        backends = {b.name: b.plugin for b in plugins.backends()}
    result = {
        "records": {
            r.name: {"ok": r.ok, "error": r.error, "backends": list(r.backends),
                     "exporters": list(r.exporters),
                     "distribution": r.distribution, "version": r.version, "module": r.module}
            for r in records
        },
        "backends": backends,
        "warnings": [{"category": w.category.__name__, "message": str(w.message)} for w in caught],
    }
    if len(sys.argv) > 2:
        import edgecv
        detections = edgecv.load(sys.argv[1], backend="onnx")(sys.argv[2])
        result["labels"] = detections.labels
        result["scores"] = detections.scores.tolist()
    print(json.dumps(result))
    """
)


def make_distribution(root: Path, dist: str, entry_name: str, module: str, source: str) -> None:
    """A minimal installed distribution: NAME-0.1.dist-info (METADATA, entry_points.txt) + the module."""
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[edgecv]\n{entry_name} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin-site")
    make_distribution(root, "edgecv_goodplug", "good", "edgecv_goodplug", GOOD_PLUGIN)
    make_distribution(
        root, "edgecv_importbroken", "broken_import", "edgecv_importbroken", IMPORT_BROKEN_PLUGIN
    )
    make_distribution(
        root, "edgecv_registerbroken", "broken_register", "edgecv_registerbroken", REGISTER_BROKEN_PLUGIN
    )
    return root


def subprocess_env(plugin_site: Path, **extra: str) -> dict[str, str]:
    """This environment minus EDGECV_* settings (assets kept), with the fake distributions importable."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EDGECV_") or k == "EDGECV_ASSETS"}
    environment["PYTHONPATH"] = str(plugin_site)
    environment.update(extra)
    return environment


def probe(plugin_site: Path, *args: str, **env: str) -> dict:
    """Run PROBE in a fresh interpreter; returns its JSON report."""
    environment = subprocess_env(plugin_site, **env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def plugin_warnings(result: dict) -> list[str]:
    return [w["message"] for w in result["warnings"] if w["category"] == "PluginWarning"]


# --- discovery in subprocesses ------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_plugins(plugin_site: Path) -> dict:
    return probe(plugin_site)


def test_good_plugin_is_discovered_with_its_backend(all_plugins: dict) -> None:
    good = all_plugins["records"]["good"]
    assert good["ok"] and good["error"] is None
    assert good["backends"] == ["fakert"]
    assert good["exporters"] == ["fakefmt"]
    assert (good["distribution"], good["version"], good["module"]) == (
        "edgecv_goodplug",
        "0.1",
        "edgecv_goodplug",
    )
    assert all_plugins["backends"]["fakert"] == "good"


def test_installed_onnx_plugin_still_works_next_to_broken_ones(all_plugins: dict) -> None:
    onnx = all_plugins["records"]["onnx"]
    assert onnx["ok"] and onnx["backends"] == ["onnx"] and onnx["exporters"] == ["onnx"]
    assert onnx["distribution"] == "edgecv-onnx"
    assert all_plugins["backends"]["onnx"] == "onnx"


def test_plugin_failing_at_import_is_recorded_with_its_error(all_plugins: dict) -> None:
    broken = all_plugins["records"]["broken_import"]
    assert not broken["ok"]
    assert broken["error"] == "RuntimeError: boom at import"
    assert broken["backends"] == []


def test_plugin_failing_to_register_backends_is_recorded_with_its_error(all_plugins: dict) -> None:
    broken = all_plugins["records"]["broken_register"]
    assert not broken["ok"]
    assert "edgecv_register_backends" in broken["error"]
    assert "ValueError: cannot declare backends" in broken["error"]
    assert {"onnx", "fakert"} <= set(all_plugins["backends"])
    assert "broken_register" not in all_plugins["backends"].values()


def test_one_warning_names_all_broken_plugins(all_plugins: dict) -> None:
    messages = plugin_warnings(all_plugins)
    assert len(messages) == 1
    assert "broken_import" in messages[0] and "broken_register" in messages[0]
    assert "boom at import" in messages[0]
    assert not re.search(r"\bgood\b", messages[0])
    assert "EDGECV_DISABLE_PLUGINS" in messages[0]


def test_edgecv_plugins_loads_only_the_named_ones(plugin_site: Path) -> None:
    result = probe(plugin_site, EDGECV_PLUGINS="good, onnx")
    assert set(result["records"]) == {"good", "onnx"}
    assert set(result["backends"]) == {"onnx", "fakert"}
    assert plugin_warnings(result) == []


def test_empty_edgecv_plugins_loads_none(plugin_site: Path) -> None:
    result = probe(plugin_site, EDGECV_PLUGINS="")
    assert result["records"] == {}
    assert result["backends"] == {}
    assert plugin_warnings(result) == []


def test_disable_plugins_skips_the_named_one(plugin_site: Path) -> None:
    result = probe(plugin_site, EDGECV_DISABLE_PLUGINS="broken_import")
    assert "broken_import" not in result["records"]
    assert {"good", "onnx", "broken_register"} <= set(result["records"])
    messages = plugin_warnings(result)
    assert len(messages) == 1 and "broken_register" in messages[0] and "broken_import" not in messages[0]


def test_disabling_every_broken_plugin_silences_the_warning(plugin_site: Path) -> None:
    result = probe(plugin_site, EDGECV_DISABLE_PLUGINS="broken_import,broken_register")
    assert plugin_warnings(result) == []
    assert all(r["ok"] for r in result["records"].values())


def test_onnx_backend_predicts_with_broken_plugins_installed(
    plugin_site: Path, models: Path, bus_path: Path
) -> None:
    result = probe(plugin_site, str(models / "yolo11n_320_fp32_dequant.onnx"), str(bus_path))
    assert len(plugin_warnings(result)) == 1
    assert result["labels"] == ["person", "person", "bus", "person", "person"]
    np.testing.assert_allclose(result["scores"], [0.848, 0.784, 0.718, 0.706, 0.323], atol=0.01)


def test_cli_backends_lists_broken_plugins_and_warns_once(plugin_site: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edgecv", "backends", "--json"],
        env=subprocess_env(plugin_site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    plugins = {p["name"]: p for p in report["plugins"]}
    assert plugins["broken_import"]["error"] == "RuntimeError: boom at import"
    assert "cannot declare backends" in plugins["broken_register"]["error"]
    assert plugins["good"]["ok"] and plugins["onnx"]["ok"]
    backends = {b["name"]: b for b in report["backends"]}
    assert backends["fakert"]["plugin"] == "good" and backends["fakert"]["distribution"] == "edgecv_goodplug"
    assert backends["onnx"]["available"]
    warning_lines = [line for line in done.stderr.splitlines() if "broken edgecv plugin" in line]
    assert len(warning_lines) == 1
    assert "broken_import" in warning_lines[0] and "broken_register" in warning_lines[0]


# --- in-process app plugins ---------------------------------------------------------------------


class Observer:
    def __init__(self) -> None:
        self.seen: list[tuple[int, tuple[int, ...], Detections]] = []
        self.loaded: list[object] = []

    @edgecv.hookimpl
    def edgecv_on_detections(self, model, image, detections) -> None:
        self.seen.append((id(model), image.shape, detections))

    @edgecv.hookimpl
    def edgecv_on_model_loaded(self, model) -> None:
        self.loaded.append(model)


class FixedAnswer:
    """Overrides the core's postprocess with one made-up detection."""

    @edgecv.hookimpl(tryfirst=True)
    def edgecv_postprocess(self, outputs, spec, letterbox, options) -> Detections:
        return Detections([[1, 2, 3, 4]], [0.5], [7], names=spec.names, image_shape=letterbox.image_shape)


class Declines:
    """A postprocess that returns None leaves the frame to the next implementation."""

    calls = 0

    @edgecv.hookimpl(tryfirst=True)
    def edgecv_postprocess(self, outputs, spec, letterbox, options):
        Declines.calls += 1
        return None


@pytest.fixture
def small_model_path(models: Path) -> Path:
    return models / "yolo11n_320_fp32_dequant.onnx"


def test_observer_sees_every_detection(
    fresh_plugins, small_model_path: Path, bus_path: Path, zidane_path: Path
) -> None:
    observer = Observer()
    fresh_plugins.register(observer, name="app-observer")
    model = edgecv.load(small_model_path)
    assert observer.loaded == [model]
    results = model([bus_path, zidane_path])
    assert len(observer.seen) == 2
    assert [s[1] for s in observer.seen] == [(1080, 810, 3), (720, 1280, 3)]
    for (model_id, _, seen), returned in zip(observer.seen, results, strict=True):
        assert model_id == id(model)
        assert seen is returned
    assert sum(len(s[2]) for s in observer.seen) == sum(len(r) for r in results) > 0
    fresh_plugins.unregister(observer)
    model(bus_path)
    assert len(observer.seen) == 2


def test_plugin_postprocess_overrides_default_and_unregister_restores_it(
    fresh_plugins, small_model_path: Path, bus_path: Path
) -> None:
    model = edgecv.load(small_model_path)
    default = model(bus_path)
    assert default.labels[:2] == ["person", "person"]

    override = FixedAnswer()
    fresh_plugins.register(override, name="fixed-answer")
    replaced = model(bus_path)
    assert replaced.labels == ["truck"]  # class 7
    np.testing.assert_array_equal(replaced.boxes, [[1, 2, 3, 4]])
    assert replaced.source == str(bus_path) and replaced.timings is not None

    fresh_plugins.unregister(override)
    restored = model(bus_path)
    assert restored.labels == default.labels
    np.testing.assert_array_equal(restored.boxes, default.boxes)


def test_postprocess_returning_none_falls_through_to_default(
    fresh_plugins, small_model_path: Path, bus_path: Path
) -> None:
    Declines.calls = 0
    fresh_plugins.register(Declines(), name="declines")
    detections = edgecv.load(small_model_path)(bus_path)
    assert Declines.calls == 1
    assert detections.labels == ["person", "person", "bus", "person", "person"]


def test_in_process_plugin_declares_and_withdraws_a_backend(fresh_plugins) -> None:
    from edgecv.backend import Backend

    class Declares:
        @edgecv.hookimpl
        def edgecv_register_backends(self, register) -> None:
            register(Backend(name="inproc", open=lambda path, options: None, formats=(".inproc",)))

    plugin = Declares()
    fresh_plugins.register(plugin, name="inproc-plugin")
    declared = {b.name: b.plugin for b in fresh_plugins.backends()}
    assert declared["inproc"] == "inproc-plugin"
    assert "onnx" in declared
    fresh_plugins.unregister(plugin)
    assert "inproc" not in {b.name for b in fresh_plugins.backends()}


def test_reset_forgets_registered_plugins(fresh_plugins, small_model_path: Path, bus_path: Path) -> None:
    fresh_plugins.register(FixedAnswer(), name="fixed-answer")
    fresh_plugins.reset()
    assert edgecv.load(small_model_path)(bus_path).labels[0] == "person"


def test_in_process_plugin_failing_to_declare_backends_is_rolled_back(fresh_plugins) -> None:
    from edgecv.errors import PluginError

    class Broken:  # an app plugin whose backend declaration fails
        @edgecv.hookimpl
        def edgecv_register_backends(self, register) -> None:
            raise RuntimeError("no device\nsecond line")

    broken = Broken()
    expected = "failed to register: edgecv_register_backends raised RuntimeError: no device second line"
    with pytest.raises(PluginError, match=expected):
        fresh_plugins.register(broken, name="broken-app")
    assert not fresh_plugins.plugin_manager().is_registered(broken)

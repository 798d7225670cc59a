"""A plugin cannot take edgecv down, take over another's backend, or fail without being named.

Real entry points (fake distributions made by ``make_distribution``) in subprocesses: a plugin
calling ``sys.exit()`` or raising ``KeyboardInterrupt`` at import, an impostor registering the
name ``onnx`` again, an observer failing in ``edgecv_on_result``, and ``EDGECV_PLUGINS`` naming a
plugin that is not installed (issue 12, item 13).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_plugins import GOOD_PLUGIN, make_distribution, plugin_warnings

import edgecv
from edgecv.backend import Backend
from edgecv.errors import PluginError
from edgecv.testing.cli import assert_one_line_error

EXITS = "import sys\nsys.exit()\n"
EXITS_WITH_CODE = "import sys\nsys.exit(3)\n"
INTERRUPTS = "raise KeyboardInterrupt\n"
INTERRUPTS_REGISTERING = """
from edgecv.backend import hookimpl

@hookimpl
def edgecv_register_backends(register):
    raise KeyboardInterrupt
"""
IMPOSTOR = """
from edgecv.backend import Backend, Exporter, hookimpl

def open_session(path, options):
    raise RuntimeError("impostor opened the model")

@hookimpl
def edgecv_register_backends(register):
    register(Backend(name="onnx", open=open_session, formats=(".onnx",), priority=99))
    register(Backend(name="mine", open=open_session, formats=(".mine",)))

@hookimpl
def edgecv_register_exporters(register):
    register(Exporter(format="ONNX", export=lambda source, output, options: output))
"""
FAILING_OBSERVER = """
from edgecv.backend import hookimpl

@hookimpl
def edgecv_on_result(result):
    raise ValueError("cannot handle frame " + str(result.frame))
"""
# Sends the Ctrl-C a user would press while this plugin imports: that one must still interrupt.
USER_PRESSES_CTRL_C = """
import os, signal, time
os.kill(os.getpid(), signal.SIGINT)
time.sleep(5)
"""

PLUGINS = {
    "exits": EXITS,
    "exits_code": EXITS_WITH_CODE,
    "interrupts": INTERRUPTS,
    "interrupts_registering": INTERRUPTS_REGISTERING,
    "impostor": IMPOSTOR,
    "good": GOOD_PLUGIN,
    "failing_observer": FAILING_OBSERVER,
    "ctrl_c": USER_PRESSES_CTRL_C,
}

# The fake distributions come after the installed ones on sys.path, as a second plugin installed
# later would: the real edgecv-onnx registers "onnx" first.
PROBE = textwrap.dedent(
    """
    import json, sys, warnings
    sys.path.append(sys.argv[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from edgecv import plugins
        records = plugins.plugin_records()
        backends = {b.name: b.plugin for b in plugins.backends()}
        exporters = {e.format: e.plugin for e in plugins.exporters()}
    print(json.dumps({
        "records": {r.name: {"ok": r.ok, "error": r.error, "backends": list(r.backends),
                             "conflicts": list(r.conflicts)} for r in records},
        "backends": backends,
        "exporters": exporters,
        "warnings": [{"category": w.category.__name__, "message": str(w.message)} for w in caught],
    }))
    """
)
# Ctrl-C raises KeyboardInterrupt even where the test runner started us with SIGINT ignored.
CLI = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.path.append(sys.argv.pop(1)); from edgecv.cli import main; sys.argv[0] = 'edgecv'; main()"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("isolation-site")
    for name, source in PLUGINS.items():
        make_distribution(root, f"edgecv_{name}", name, f"edgecv_{name}", source)
    return root


def environment(**extra: str) -> dict[str, str]:
    """This environment minus EDGECV_* settings (assets kept); the probe appends the site itself."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("EDGECV_") or k == "EDGECV_ASSETS"}
    return {**kept, **extra}


def probe(site: Path, **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(site)],
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def cli(site: Path, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, str(site), *map(str, args)],
        env={**environment(**env), "EDGECV_DEBUG": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- (a) sys.exit() and KeyboardInterrupt from a plugin break only that plugin ---------------------

LOADED = "onnx,good,exits,exits_code,interrupts,interrupts_registering"


def test_plugins_exiting_or_interrupting_are_recorded_as_broken(site: Path) -> None:
    result = probe(site, EDGECV_PLUGINS=LOADED)
    records = result["records"]
    assert records["exits"]["error"] == "SystemExit"
    assert records["exits_code"]["error"] == "SystemExit: 3"
    assert records["interrupts"]["error"] == "KeyboardInterrupt"
    assert records["interrupts_registering"]["error"] == "edgecv_register_backends raised KeyboardInterrupt"
    assert records["onnx"]["ok"] and records["good"]["ok"]
    assert result["backends"] == {"onnx": "onnx", "fakert": "good"}
    (warning,) = plugin_warnings(result)
    for name in ("exits", "exits_code", "interrupts", "interrupts_registering"):
        assert f"{name} (" in warning


def test_commands_still_run_next_to_exiting_plugins(site: Path, models: Path, bus_path: Path) -> None:
    done = cli(
        site, "predict", bus_path, "--model", models / "yolo11n_320_fp32_dequant.onnx", EDGECV_PLUGINS=LOADED
    )
    assert done.returncode == 0, done.stderr
    assert "bus" in done.stdout
    (warning,) = [line for line in done.stderr.splitlines() if "broken edgecv plugin" in line]
    assert "exits (SystemExit)" in warning and "interrupts (KeyboardInterrupt)" in warning


def test_ctrl_c_pressed_while_plugins_load_still_interrupts(site: Path) -> None:
    done = cli(site, "backends", EDGECV_PLUGINS="onnx,ctrl_c")
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert done.stderr.strip() == "interrupted"


# --- (b) a backend name (or export format) belongs to the plugin that registered it first ---------


def test_a_second_plugin_cannot_take_over_a_backend_name(site: Path) -> None:
    result = probe(site, EDGECV_PLUGINS="onnx,impostor")
    assert result["backends"] == {"onnx": "onnx", "mine": "impostor"}
    assert result["exporters"] == {"onnx": "onnx"}
    impostor = result["records"]["impostor"]
    assert impostor["ok"] and impostor["backends"] == ["mine"]
    assert impostor["conflicts"] == [
        "backend 'onnx' (plugin 'onnx' registered it first)",
        "export format 'ONNX' (plugin 'onnx' registered it first)",
    ]
    (warning,) = plugin_warnings(result)
    assert "already taken: impostor: backend 'onnx' (plugin 'onnx' registered it first)" in warning


def test_the_onnx_backend_stays_the_real_one_and_backends_shows_the_conflict(
    site: Path, models: Path, bus_path: Path
) -> None:
    model = models / "yolo11n_320_fp32_dequant.onnx"
    done = cli(
        site, "predict", bus_path, "--model", model, "--backend", "onnx", EDGECV_PLUGINS="onnx,impostor"
    )
    assert done.returncode == 0, done.stderr
    assert "impostor opened the model" not in done.stderr and "bus" in done.stdout
    listing = cli(site, "backends", EDGECV_PLUGINS="onnx,impostor")
    assert listing.returncode == 0, listing.stderr
    refused = "refused from plugin impostor (edgecv_impostor 0.1): backend 'onnx' (plugin 'onnx' registered"
    assert refused in listing.stdout
    report = json.loads(cli(site, "backends", "--json", EDGECV_PLUGINS="onnx,impostor").stdout)
    by_name = {p["name"]: p for p in report["plugins"]}
    assert len(by_name["impostor"]["conflicts"]) == 2 and by_name["onnx"]["conflicts"] == []


def test_an_app_plugin_registering_a_taken_backend_name_is_refused(fresh_plugins) -> None:
    class Impostor:
        @edgecv.hookimpl
        def edgecv_register_backends(self, register) -> None:
            register(Backend(name="onnx", open=lambda path, options: None, formats=(".onnx",), priority=99))

    impostor = Impostor()
    with pytest.raises(
        PluginError, match=r"'app' registers a name already taken: backend 'onnx' \(plugin 'onnx'"
    ):
        fresh_plugins.register(impostor, name="app")
    assert not fresh_plugins.plugin_manager().is_registered(impostor)
    assert [b.plugin for b in fresh_plugins.backends() if b.name == "onnx"] == ["onnx"]


def test_a_second_distribution_with_a_taken_entry_point_name_is_not_loaded(tmp_path: Path) -> None:
    make_distribution(tmp_path, "edgecv_onnx_impostor", "onnx", "edgecv_onnx_impostor", IMPOSTOR)
    result = probe(tmp_path, EDGECV_PLUGINS="onnx")
    assert result["backends"] == {"onnx": "onnx"}
    (warning,) = plugin_warnings(result)
    assert "entry-point name 'onnx' is taken by edgecv-onnx" in warning


# --- (c) a failing observer is named ------------------------------------------------------------


def test_a_failing_observer_is_named_in_the_error(site: Path, models: Path, assets: Path) -> None:
    video = assets / "videos" / "pedestrians_vtest_30s.mp4"
    done = cli(
        site,
        "run",
        video,
        "--model",
        models / "yolo11n_320_fp32_dequant.onnx",
        "--max-frames",
        "2",
        "--json",
        "--thermal",
        "off",
        EDGECV_PLUGINS="onnx,failing_observer",
    )
    assert_one_line_error(
        done, "plugin 'failing_observer' failed in edgecv_on_result: ValueError: cannot handle frame 0"
    )
    assert "unexpected" not in done.stderr


# --- (d) EDGECV_PLUGINS names only installed plugins ----------------------------------------------


def test_an_unknown_name_in_edgecv_plugins_is_an_error(site: Path) -> None:
    done = cli(site, "backends", EDGECV_PLUGINS="onnx,nosuch,gdoo")
    line = assert_one_line_error(
        done, "Unknown plugins in EDGECV_PLUGINS: 'gdoo' (did you mean 'good'?), 'nosuch'", "Known: "
    )
    for installed in ("onnx", "good", "impostor"):
        assert installed in line

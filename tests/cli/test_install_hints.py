"""Every install hint edgecv prints is a command that works as printed, in any shell (issue 13).

A hint is ``pip install REQUIREMENT...`` (from ``edgecv.backend.pip_hint``), maybe followed by an
explanation in parentheses. Checked: it splits like a shell would split it, each requirement parses
as a pip requirement, it is quoted exactly as ``shlex`` quotes (so zsh never sees a bare ``[`` or
``>``), and edgecv's own packages, on no public index yet, come with ``--find-links dist``.

The hints are collected three ways: from the source (every string literal that holds
``pip install`` in core/src, plugins/*/src and examples/*/src), from every registered backend
(``install_hint`` and its availability check), and from what ``edgecv backends`` and
``edgecv doctor`` print, for every kind of accelerator doctor knows.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import InvalidRequirement, Requirement

from edgecv import hardware
from edgecv.backend import pip_hint
from edgecv.cli import cli
from edgecv.testing.cli import run_edgecv

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    path
    for pattern in ("core/src/**/*.py", "plugins/*/src/**/*.py", "examples/*/src/**/*.py")
    for path in ROOT.glob(pattern)
)
# A command ends where its explanation starts: " (", ")", ", ", "; ", ": ", a backtick, a line end,
# or a full stop before a space or the end.
COMMAND = re.compile(r"pip install .*?(?= \(|\)|, |; |: |`|\n|\.(?:\s|$)|$)")
# Options whose next word is their value, not a requirement.
TAKES_A_VALUE = {"--find-links", "-f", "-e", "--editable", "-r", "--requirement", "-c", "--constraint"}


def commands(text: str) -> list[str]:
    return COMMAND.findall(text)


def problems(command: str) -> list[str]:
    """Why ``command`` would not work pasted into bash or zsh (none: it works)."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return [f"the shell cannot split it: {exc}"]
    found = []
    if shlex.join(words) != command:
        found.append(f"not quoted for every shell; write {shlex.join(words)!r}")
    requirements, values = [], {}
    options = iter(words[2:])
    for word in options:
        if word in TAKES_A_VALUE:
            values[word] = next(options, "")
        elif not word.startswith("-"):
            requirements.append(word)
    if not requirements and "-e" not in values and "--editable" not in values:
        found.append("installs nothing")
    for word in requirements:
        try:
            requirement = Requirement(word)
        except InvalidRequirement as exc:
            found.append(f"{word!r} is not a pip requirement: {exc}")
            continue
        if requirement.name.startswith("edgecv") and values.get("--find-links") != "dist":
            found.append(f"{requirement.name} is only in dist/: it needs --find-links dist")
    return found


def check(hint: str, origin: str) -> None:
    for command in commands(hint):
        assert not problems(command), f"{origin}: {command!r}: {'; '.join(problems(command))}"


def check_json(output: str, origin: str) -> None:
    """Every string in a JSON report (the dump would end a command at a closing quote)."""

    def strings(value: object) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    for text in strings(json.loads(output)):
        check(text, origin)


# --- the checker itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "pip install edgecv-onnx[export]",  # zsh: no matches found
        "pip install 'edgecv-onnx[export]'",  # no index has it
        "pip install onnxruntime>=1.17",  # bash: a file named "=1.17"
        "pip install edgecv-onnx for .onnx files",
        "pip install 'unterminated",
    ],
)
def test_the_checker_refuses_what_would_not_work(bad: str) -> None:
    assert problems(commands(bad)[0])


def test_pip_hint_is_what_the_checker_accepts() -> None:
    assert pip_hint("edgecv-onnx[export]") == "pip install --find-links dist 'edgecv-onnx[export]'"
    assert pip_hint("onnxruntime>=1.17") == "pip install 'onnxruntime>=1.17'"
    assert pip_hint("edgecv-onnx", "onnxruntime-gpu") == (
        "pip install --find-links dist edgecv-onnx onnxruntime-gpu"
    )
    for requirements in (("edgecv-core[mqtt]",), ("ncnn>=1.0.20240410",), ("edgecv-onnx", "onnx>=1.16")):
        hint = f"{pip_hint(*requirements)} (why)."
        assert commands(hint) == [pip_hint(*requirements)]
        check(hint, "pip_hint")
    with pytest.raises(ValueError):
        pip_hint()


# --- every hint in the source -------------------------------------------------------------------


def literal_hints() -> Iterator[tuple[str, str]]:
    """(where, text) of every string in the source that holds ``pip install``, docstrings aside.

    An f-string's replacement fields read as ``x``: ``f"pip install edgecv-{name}"`` is checked as
    ``pip install edgecv-x``.
    """
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        inside_fstrings = {
            id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                text = "".join(part.value if isinstance(part, ast.Constant) else "x" for part in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in docstrings or id(node) in inside_fstrings:
                    continue
                text = node.value
            else:
                continue
            if "pip install" in text:
                yield f"{path.relative_to(ROOT)}:{node.lineno}", text


LITERALS = list(literal_hints())


def test_the_source_has_hints_to_check() -> None:
    assert len(LITERALS) >= 5, LITERALS


@pytest.mark.parametrize(("where", "text"), LITERALS, ids=[where for where, _ in LITERALS])
def test_every_hint_in_the_source_works_as_printed(where: str, text: str) -> None:
    check(text, where)


# --- every hint a backend gives -----------------------------------------------------------------


def test_every_backend_hint_works_and_names_no_installed_plugin(fresh_plugins) -> None:
    """A registered backend's plugin is installed: its hint names what is missing, not the plugin
    (an extra of it, such as ``edgecv-tensorrt[pip]``, names what is missing: the extra's runtime)."""
    backends = fresh_plugins.backends()
    assert {"onnx", "ncnn", "tflite", "opencv-dnn"} <= {b.name for b in backends}
    records = {r.name: r for r in fresh_plugins.plugin_records()}
    for backend in backends:
        status = backend.availability()
        for hint in (backend.install_hint, status.hint):
            check(hint, f"backend {backend.name}")
            plugin = records[backend.plugin].distribution
            for command in commands(hint):
                words = [Requirement(w) for w in shlex.split(command)[2:] if not w.startswith("-")]
                named = {requirement.name for requirement in words if not requirement.extras}
                assert plugin not in named, f"backend {backend.name}: {hint!r} installs {plugin}, installed"


# --- what the commands print --------------------------------------------------------------------


def test_error_hints_work_as_printed(bus_path: Path, models: Path) -> None:
    """The one error line of a missing runtime, an unknown backend, a format no plugin reads."""
    model = models / "yolox_nano.onnx"
    no_runtime = "import sys; sys.modules['onnxruntime'] = None; from edgecv.cli import main; main()"
    missing = run_edgecv("predict", bus_path, "--model", model, "--backend", "onnx", code=no_runtime)
    unknown = run_edgecv("predict", bus_path, "--model", model, "--backend", "nosuch")
    unread = run_edgecv("predict", bus_path, "--model", models / "coco80_labels.txt")
    not_loaded = run_edgecv("predict", bus_path, "--backend", "ncnn", env={"EDGECV_PLUGINS": "onnx"})
    for result in (missing, unknown, unread, not_loaded):
        assert result.returncode == 1 and result.stderr.startswith("error: "), result.stderr
        check(result.stderr, result.stderr)
    assert pip_hint("onnxruntime>=1.17") in missing.stderr  # the plugin is there: its runtime is not
    assert pip_hint("edgecv-ncnn") in not_loaded.stderr  # edgecv's own plugin for that backend


def test_backends_prints_working_hints() -> None:
    for args, checker in ((("backends",), check), (("backends", "--json"), check_json)):
        result = run_edgecv(*args)
        assert result.returncode == 0, result.stderr
        checker(result.stdout, " ".join(args))
    nothing = run_edgecv("backends", env={"EDGECV_PLUGINS": ""})
    assert commands(nothing.stdout) == [pip_hint("edgecv-onnx")], nothing.stdout
    check(nothing.stdout, "backends with no plugins")


def doctor_on(found: list[hardware.Accelerator], monkeypatch: pytest.MonkeyPatch) -> tuple[dict, str]:
    """``edgecv doctor`` (JSON, text) as it reads on a device with the accelerators ``found``.

    The detection reads /proc, /sys and /dev, which a test cannot change: it is replaced by what
    ``hardware.accelerators()`` gives on such a device; the rest runs as it is, on what is installed.
    """
    monkeypatch.setattr(hardware, "accelerators", lambda: found)
    runner = CliRunner()
    as_json, text = (
        runner.invoke(cli, ["doctor", *args], catch_exceptions=False) for args in (["--json"], [])
    )
    assert as_json.exit_code == 0 and text.exit_code == 0, as_json.output + text.output
    return json.loads(as_json.output), text.output


@pytest.mark.parametrize("kind", sorted(hardware.SUPPORT))
def test_doctor_prints_working_hints_for_every_accelerator(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    report, text = doctor_on([hardware.accelerator(kind, "seen by the test")], monkeypatch)
    check(text, f"doctor on {kind}")
    check_json(json.dumps(report), f"doctor --json on {kind}")
    assert report["recommendation"] in text


def test_doctor_prints_working_hints_here() -> None:
    for args, checker in ((("doctor",), check), (("doctor", "--json"), check_json)):
        result = run_edgecv(*args)
        assert result.returncode == 0, result.stderr
        checker(result.stdout, " ".join(args))


# --- doctor recommends only what is missing (issue 13, item 8) ----------------------------------


def installed_names(command: str) -> list[str]:
    """The requirements ``command`` would install that are installed already."""
    words = [w for w in shlex.split(command)[2:] if not w.startswith("-") and w != "dist"]
    return [w for w in words if hardware.installed(Requirement(w).name)]


def test_doctor_never_recommends_what_is_installed() -> None:
    """Here edgecv-onnx and onnxruntime are installed and run: doctor says there is nothing to add."""
    assert hardware.installed("edgecv-onnx") and hardware.installed("onnxruntime")
    result = run_edgecv("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    hints = [report["recommendation"], *(a["install"] or "" for a in report["accelerators"])]
    for command in [c for hint in hints for c in commands(hint)]:
        assert not installed_names(command), f"doctor recommends {command!r}: installed already"
    assert not [r for r in report["to_install"] if hardware.installed(r)]
    text = run_edgecv("doctor").stdout
    install_line = next(line for line in text.splitlines() if line.startswith("install"))
    assert "pip install" not in install_line and "nothing to install" in install_line, install_line


@pytest.mark.parametrize("kind", sorted(k for k, (packages, _) in hardware.SUPPORT.items() if packages))
def test_doctor_recommends_only_the_missing_part(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each accelerator's packages, less those installed here (all, some, or none of them)."""
    report, text = doctor_on([hardware.accelerator(kind, "seen by the test")], monkeypatch)
    packages, _ = hardware.SUPPORT[kind]
    missing = [p for p in packages if not hardware.installed(p)]
    assert report["to_install"] == missing
    if missing:
        assert report["recommendation"].startswith(pip_hint(*missing) + " (")
        assert report["accelerators"][0]["install"].startswith(pip_hint(*missing) + " (")
    else:
        assert report["recommendation"].startswith("nothing to install")
        assert report["accelerators"][0]["install"] is None
    assert f"install       {report['recommendation']}" in text


def test_advice_leaves_out_what_is_installed() -> None:
    gpu = hardware.accelerator("nvidia-gpu", "NVIDIA GPU")
    nothing, some, everything = set(), {"edgecv-onnx"}, {"edgecv-onnx", "onnxruntime-gpu"}
    assert hardware.advice([gpu], "x86_64", nothing.__contains__).missing == (
        "edgecv-onnx",
        "onnxruntime-gpu",
    )
    assert hardware.advice([gpu], "x86_64", some.__contains__).missing == ("onnxruntime-gpu",)
    assert hardware.advice([gpu], "x86_64", everything.__contains__).missing == ()
    # An accelerator without an edgecv backend leaves the choice to the CPU's.
    npu = hardware.Accelerator("npu", "/dev/npu0", (), "no edgecv backend")
    assert hardware.advice([npu], "aarch64", nothing.__contains__).packages == ("edgecv-ncnn",)
    assert hardware.advice([npu], "x86_64", some.__contains__) == hardware.Advice(
        ("edgecv-onnx",), "ONNX Runtime on the CPU", ()
    )
    # A Raspberry Pi with a Hailo (the AI Kit) runs the detector on the Hailo: edgecv-hailo.
    hailo = hardware.accelerator("hailo", "/dev/hailo0")
    pi = hardware.accelerator("raspberry-pi", "Raspberry Pi 5 Model B Rev 1.0")
    assert hardware.advice([hailo, pi], "aarch64", nothing.__contains__).missing == ("edgecv-hailo",)

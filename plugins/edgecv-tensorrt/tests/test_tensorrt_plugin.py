"""The ``tensorrt`` plugin as installed: registration, availability, install hints, CLI errors.

These run against this machine as it is (no TensorRT, no GPU in CI) and against synthetic
``tensorrt`` packages in ``tmp_path``; nothing here needs the fakes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from edgecv.backend import Availability, BackendError
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv_tensorrt import plugin, runtime

JETSON_LINE = "sudo apt install python3-libnvinfer (JetPack)"
X86_LINE = "pip install --find-links dist 'edgecv-tensorrt[pip]'"


@pytest.fixture
def unavailable_here() -> Availability:
    """This machine's availability; the CLI tests expect what CI has: no TensorRT or no GPU."""
    status = runtime.availability()
    if status.available:
        pytest.skip("TensorRT and an NVIDIA GPU are present here: the backend is available")
    return status


def test_registered_with_its_formats_below_onnx(fresh_plugins: ModuleType) -> None:
    backend = next(b for b in fresh_plugins.backends() if b.name == "tensorrt")
    onnx = next(b for b in fresh_plugins.backends() if b.name == "onnx")
    assert backend.formats == (".engine", ".plan", ".onnx")
    assert backend.plugin == "tensorrt"
    assert backend.priority < onnx.priority  # .onnx files stay on ONNX Runtime by default
    assert all(
        backend.priority > b.priority for b in fresh_plugins.backends() if b.name in ("ncnn", "opencv-dnn")
    )
    exporter = next(e for e in fresh_plugins.exporters() if e.format == "tensorrt")
    assert exporter.plugin == "tensorrt"


def test_install_hint_names_jetson_and_x86() -> None:
    assert JETSON_LINE in runtime.INSTALL_HINT
    assert X86_LINE in runtime.INSTALL_HINT


def test_backends_lists_tensorrt_unavailable_with_reason_and_both_install_lines(
    unavailable_here: Availability,
) -> None:
    result = run_edgecv("backends")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("tensorrt "))
    assert f"unavailable: {unavailable_here.reason} ({unavailable_here.hint})" in line
    if runtime.tensorrt_problem() is not None:  # CI: TensorRT missing, so both install lines
        assert JETSON_LINE in line and X86_LINE in line


def test_predict_with_backend_tensorrt_is_one_error_line(
    unavailable_here: Availability, models: Path
) -> None:
    bus = models.parent / "images" / "bus.jpg"
    result = run_edgecv(
        "predict", bus, "--model", models / "yolov8n_fp32_dequant.onnx", "--backend", "tensorrt"
    )
    assert_one_line_error(
        result, "Backend 'tensorrt' is not available", unavailable_here.reason, unavailable_here.hint
    )


def test_predict_on_an_engine_file_is_one_error_line(
    unavailable_here: Availability, tmp_path: Path, bus_path: Path
) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not checked: the backend is missing")
    result = run_edgecv("predict", bus_path, "--model", engine)
    assert_one_line_error(result, "Backend 'tensorrt' reads model.engine but is not available")


# --- availability ------------------------------------------------------------------------------


@pytest.fixture
def tensorrt_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on ``sys.path`` where the test makes a ``tensorrt`` package; the real lookup runs."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    yield tmp_path / "tensorrt"
    sys.modules.pop("tensorrt", None)


def test_type_stubs_alone_are_not_tensorrt(tensorrt_package: Path) -> None:
    tensorrt_package.mkdir()
    (tensorrt_package / "__init__.pyi").write_text("__version__: str\n")  # what tensorrt-stubs installs
    problem = runtime.tensorrt_problem()
    assert problem is not None and "only type stubs" in problem
    with pytest.raises(BackendError, match="only type stubs") as caught:
        runtime.load_tensorrt()
    assert JETSON_LINE in caught.value.hint


def test_a_real_package_is_found_without_importing_it(tensorrt_package: Path) -> None:
    tensorrt_package.mkdir()
    (tensorrt_package / "__init__.py").write_text(
        "raise RuntimeError('imported by the availability check')\n"
    )
    assert runtime.tensorrt_problem() is None


def test_an_impostor_or_too_old_tensorrt_is_refused(tensorrt_package: Path) -> None:
    tensorrt_package.mkdir()
    (tensorrt_package / "__init__.py").write_text("__version__ = '10.3.0'\n")
    with pytest.raises(BackendError, match="not NVIDIA TensorRT"):
        runtime.load_tensorrt()
    sys.modules.pop("tensorrt")
    (tensorrt_package / "__init__.py").write_text("__version__ = '8.5.2'\nclass Runtime: ...\n")
    with pytest.raises(BackendError, match=r"8\.5\.2 is older than 8\.6"):
        runtime.load_tensorrt()


@pytest.mark.parametrize(
    ("trt_problem", "gpu_problem", "available", "hint"),
    [
        (None, None, True, ""),
        ("TensorRT is not installed", None, False, runtime.INSTALL_HINT),
        (None, "no NVIDIA GPU found", False, runtime.GPU_HINT),
        ("TensorRT is not installed", "no NVIDIA GPU found", False, runtime.INSTALL_HINT),
    ],
)
def test_availability_needs_tensorrt_and_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
    trt_problem: str | None,
    gpu_problem: str | None,
    available: bool,
    hint: str,
) -> None:
    monkeypatch.setattr(runtime, "tensorrt_problem", lambda: trt_problem)
    monkeypatch.setattr(runtime, "cuda_problem", lambda: gpu_problem)
    status = plugin.check()
    assert status.available is available
    assert status.hint == hint
    for problem in (trt_problem, gpu_problem):
        assert problem is None or problem in status.reason


def test_discovery_and_the_check_import_neither_tensorrt_nor_the_session() -> None:
    code = (
        "import sys\n"
        "from edgecv import plugins\n"
        "backend = next(b for b in plugins.backends() if b.name == 'tensorrt')\n"
        "def loaded(*names): return [m for m in names if m in sys.modules]\n"
        "before = loaded('tensorrt', 'cuda.bindings.runtime', 'edgecv_tensorrt.session')\n"
        "backend.availability()\n"
        "print(before, loaded('tensorrt', 'edgecv_tensorrt.session', 'edgecv_tensorrt.build'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] []"


def test_the_exporter_delegates_to_export_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from edgecv_tensorrt import export

    calls: list[tuple[Path, Path, dict[str, object]]] = []

    def fake_export(source: Path, output: Path, options: dict[str, object]) -> Path:
        calls.append((source, output, options))
        return output

    monkeypatch.setattr(export, "export", fake_export)
    assert (
        plugin.export(tmp_path / "a.onnx", tmp_path / "a.engine", {"precision": "fp16"})
        == tmp_path / "a.engine"
    )
    assert calls == [(tmp_path / "a.onnx", tmp_path / "a.engine", {"precision": "fp16"})]

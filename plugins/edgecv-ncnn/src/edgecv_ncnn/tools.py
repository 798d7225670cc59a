"""Finding and running the converter executables: pnnx, ncnn2table and ncnn2int8.

pnnx is looked up, in order: ``EDGECV_PNNX`` (a path to an executable), the executable inside the
installed ``pnnx`` Python package (found with ``importlib.util.find_spec``, never imported: the
package's ``__init__`` imports torch), then ``pnnx`` on ``PATH``, skipping Python console scripts
(pip's ``pnnx`` entry point is one, and it imports torch too).

ncnn2table and ncnn2int8 (INT8 calibration and conversion) are not in the ncnn wheel, nor in its
source distribution; they are looked up in ``EDGECV_NCNN_TOOLS`` (folders, ``os.pathsep``-separated),
then on ``PATH``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from edgecv.backend import BackendError, ConfigError

PNNX_ENV = "EDGECV_PNNX"
TOOLS_ENV = "EDGECV_NCNN_TOOLS"
PNNX_INSTALL = (
    "Install the converter without torch: pip install --no-deps pnnx "
    "(or python -m edgecv_ncnn install-pnnx); its PyPI package declares torch, but the pnnx executable "
    f"inside it converts ONNX without it. Or set {PNNX_ENV} to a pnnx executable."
)
INT8_TOOLS = ("ncnn2table", "ncnn2int8")
INT8_INSTALL = (
    "The ncnn wheel does not ship them: build ncnn's tools from source (git clone "
    "https://github.com/Tencent/ncnn; cmake -B build -DNCNN_BUILD_TOOLS=ON -DNCNN_VULKAN=OFF; "
    "cmake --build build -j2 --target ncnn2table ncnn2int8) and put build/tools/quantize on PATH "
    f"or in {TOOLS_ENV}; or export --precision fp16, which needs no tools."
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_EXE = ".exe" if sys.platform == "win32" else ""


def is_native_executable(path: Path) -> bool:
    """An executable file that is not a script (``#!``): pip console scripts import torch."""
    if not path.is_file() or not os.access(path, os.X_OK):
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(2) != b"#!"
    except OSError:
        return False


def find_pnnx() -> Path | None:
    configured = os.environ.get(PNNX_ENV)
    if configured:
        path = Path(configured)
        # Any executable, wrapper scripts included: the user chose it.
        if not path.is_file() or not os.access(path, os.X_OK):
            raise ConfigError(
                f"{PNNX_ENV}={configured} is not a pnnx executable",
                f"Point {PNNX_ENV} at the pnnx binary (e.g. site-packages/pnnx/pnnx) or unset it.",
            )
        return path
    try:
        spec = importlib.util.find_spec("pnnx")
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / f"pnnx{_EXE}"
        if is_native_executable(candidate):
            return candidate
    return _on_path(f"pnnx{_EXE}")


def _on_path(name: str) -> Path | None:
    """``name`` on PATH, skipping scripts: pip's ``pnnx`` console script imports torch."""
    for folder in filter(None, os.environ.get("PATH", "").split(os.pathsep)):
        candidate = Path(folder) / name
        if is_native_executable(candidate):
            return candidate
    return None


def require_pnnx() -> Path:
    found = find_pnnx()
    if found is None:
        raise BackendError("Exporting to NCNN needs the pnnx converter, which was not found", PNNX_INSTALL)
    return found


def pnnx_version(executable: Path) -> str:
    """The pnnx package version when the executable came from it (the binary has no --version)."""
    try:
        spec = importlib.util.find_spec("pnnx")
    except (ImportError, ValueError):
        spec = None
    folders = [Path(f).resolve() for f in (spec.submodule_search_locations or [])] if spec else []
    if executable.resolve().parent in folders:
        try:
            return importlib.metadata.version("pnnx")
        except importlib.metadata.PackageNotFoundError:
            pass
    return f"unknown ({executable})"


def find_tool(name: str) -> Path | None:
    """An ncnn command-line tool from ``EDGECV_NCNN_TOOLS``, else from ``PATH``."""
    for folder in filter(None, os.environ.get(TOOLS_ENV, "").split(os.pathsep)):
        candidate = Path(folder) / f"{name}{_EXE}"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(f"{name}{_EXE}")
    return Path(found) if found else None


def require_int8_tools() -> tuple[Path, Path]:
    found = {name: find_tool(name) for name in INT8_TOOLS}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        where = os.environ.get(TOOLS_ENV)
        searched = f"{TOOLS_ENV}={where} and PATH" if where else f"PATH ({TOOLS_ENV} is not set)"
        raise BackendError(
            f"INT8 export to NCNN needs {' and '.join(missing)}, not found on {searched}", INT8_INSTALL
        )
    table, int8 = (found[name] for name in INT8_TOOLS)
    assert table is not None and int8 is not None
    return table, int8


def run(command: Sequence[str | Path], cwd: Path, what: str, hint: str, timeout: float = 1800) -> str:
    """Run a converter in ``cwd``; its stdout+stderr, or a one-line ``BackendError`` with the last lines."""
    args = [str(part) for part in command]
    try:
        result = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BackendError(f"{what} did not finish within {timeout:.0f} s", hint) from exc
    except OSError as exc:
        raise BackendError(f"{what} could not be started ({args[0]}: {exc.strerror})", hint) from exc
    output = f"{result.stdout}\n{result.stderr}"
    if result.returncode != 0:
        raise BackendError(
            f"{what} failed (exit status {result.returncode}): {last_lines(result.stderr or result.stdout)}",
            hint,
        )
    return output


def last_lines(text: str, count: int = 3) -> str:
    """The last ``count`` meaningful lines of a tool's output, on one line, without colour codes."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not set(line) <= set("#-=*. ")]
    return " | ".join(lines[-count:])[:400] or "(no output)"

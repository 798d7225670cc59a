"""Running the real `edgecv` command in a subprocess, as users do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ASSETS = Path(os.environ.get("EDGECV_ASSETS", Path.cwd().parent / "shared" / "assets"))
BUS = ASSETS / "images" / "bus.jpg"
MODEL = ASSETS / "models" / "yolov8n_fp32_dequant.onnx"


def edgecv(
    *args: str | Path, env: dict[str, str] | None = None, code: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "edgecv"]
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "EDGECV_ASSETS": str(ASSETS), **(env or {})},
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]

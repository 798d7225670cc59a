"""Running the real `edgecv` command in a subprocess, as users do."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from edgecv.testing.cli import assert_one_line_error, run_edgecv

__all__ = ["ASSETS", "BUS", "MODEL", "assert_one_line_error", "edgecv"]

ASSETS = Path(os.environ.get("EDGECV_ASSETS", Path.cwd().parent / "shared" / "assets"))
BUS = ASSETS / "images" / "bus.jpg"
MODEL = ASSETS / "models" / "yolov8n_fp32_dequant.onnx"


def edgecv(
    *args: str | Path, env: dict[str, str] | None = None, code: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_edgecv(*args, env=env, code=code, assets=ASSETS)

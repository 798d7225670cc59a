"""Running the real ``edgecv`` command in a subprocess, as users do, and checking its error line.

For edgecv's own tests and backend packages' (every user-facing failure is one ``error:`` line).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_edgecv(
    *args: str | Path,
    env: dict[str, str] | None = None,
    code: str | None = None,
    assets: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m edgecv ARGS`` (or ``python -c CODE ARGS``) with the given environment additions."""
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "edgecv"]
    extra = {"EDGECV_ASSETS": str(assets)} if assets is not None else {}
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "EDGECV_DEBUG": "0", **extra, **(env or {})},
        timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit status 1, no traceback, and stderr is exactly one ``error:`` line holding ``fragments``."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]

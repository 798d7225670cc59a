"""``edgecv compress`` (issue 16) from the core's side: its subcommands come from edgecv-torch,
imported only when used; without edgecv-torch every subcommand is one ``error:`` line that says
how to install it, and help still works."""

from __future__ import annotations

import importlib.util
import shlex

import pytest

from edgecv.backend import pip_hint
from edgecv.testing.cli import assert_one_line_error, run_edgecv

# The CLI with edgecv-torch made unimportable, as in an environment that never installed it.
WITHOUT_TORCH_PLUGIN = (
    "import sys; sys.modules['edgecv_torch'] = None; sys.argv[0] = 'edgecv'; "
    "from edgecv.cli import main; main()"
)
SUBCOMMANDS = ("prune", "distill", "ptq", "export", "report", "from-ultralytics")


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_without_edgecv_torch_each_subcommand_says_how_to_install_it(subcommand: str) -> None:
    result = run_edgecv("compress", subcommand, "--help", code=WITHOUT_TORCH_PLUGIN)
    line = assert_one_line_error(result, "edgecv compress needs the edgecv-torch package")
    hint = pip_hint("edgecv-torch[compress]")
    assert line.endswith(hint)
    assert shlex.split(hint)[-1] == "edgecv-torch[compress]"  # quoted for zsh
    assert result.stdout == ""


def test_without_edgecv_torch_help_still_works() -> None:
    result = run_edgecv("compress", "--help", code=WITHOUT_TORCH_PLUGIN)
    assert result.returncode == 0, result.stderr
    assert "needs edgecv-torch" in result.stdout
    overview = run_edgecv("--help", code=WITHOUT_TORCH_PLUGIN)
    assert overview.returncode == 0 and "compress" in overview.stdout


@pytest.mark.skipif(importlib.util.find_spec("edgecv_torch") is None, reason="edgecv-torch is not installed")
def test_with_edgecv_torch_the_subcommands_are_listed_without_importing_torch() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from edgecv.cli import cli; "
        "r = CliRunner().invoke(cli, ['compress', '--help']); print(r.output); "
        "print('torch imported:', 'torch' in sys.modules)"
    )
    result = run_edgecv(code=code)
    assert result.returncode == 0, result.stderr
    for subcommand in SUBCOMMANDS:
        assert f"  {subcommand} " in result.stdout
    assert "torch imported: False" in result.stdout

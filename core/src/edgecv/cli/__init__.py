"""The ``edgecv`` command. Only click is imported at start-up; commands import the rest lazily."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from typing import Any

import click

from edgecv import __version__

# Command name -> "module:attribute"; a module is imported only when its command is used or listed.
COMMANDS = {
    "predict": "edgecv.cli.predict:predict_command",
    "val": "edgecv.cli.val:val_command",
    "bench": "edgecv.cli.bench:bench_command",
    "export": "edgecv.cli.export:export_command",
    "backends": "edgecv.cli.backends:backends_command",
    "models": "edgecv.cli.models:models_command",
    "run": "edgecv.cli.run:run_command",
    "doctor": "edgecv.cli.doctor:doctor_command",
    "compress": "edgecv.cli.compress:compress_command",
}


def _one_line_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    click.echo(f"warning: {message}", err=True)


class EdgecvGroup(click.Group):
    """Turns every failure into one ``error:`` line and exit 1; ``--debug`` shows the traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # The reader (e.g. `| head`) went away: stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except Exception as exc:
            if _debug(ctx):
                raise
            from edgecv.errors import EdgecvError, one_line

            if isinstance(exc, EdgecvError):
                message = str(exc)
            else:
                message = (
                    f"unexpected {type(exc).__name__}: {one_line(exc, 300)}. "
                    "Run with --debug for the traceback and report it."
                )
            click.echo(f"error: {message}", err=True)
            ctx.exit(1)


class _OneLineLog(logging.Formatter):
    """``warning: message``, like the CLI's other messages; tracebacks only with --debug."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"
        if self.debug and record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _setup_logging(debug: bool) -> None:
    """edgecv's own log (reconnects, throttling, restarts) to stderr: warnings, or everything with --debug."""
    logger = logging.getLogger("edgecv")
    if any(isinstance(h.formatter, _OneLineLog) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLineLog(debug))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug")) or os.environ.get("EDGECV_DEBUG") == "1"


@click.group(cls=EdgecvGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgecv")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """edgecv: run computer-vision detectors fast and reliably on edge hardware."""
    debugging = debug or os.environ.get("EDGECV_DEBUG") == "1"
    if not debugging:
        warnings.showwarning = _one_line_warning
    _setup_logging(debugging)


def main() -> None:
    cli(prog_name="edgecv")


if __name__ == "__main__":
    main()

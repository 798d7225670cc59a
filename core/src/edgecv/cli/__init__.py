"""The ``edgecv`` command. Only click is imported at start-up; commands import the rest lazily."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import click

from edgecv import __version__
from edgecv.cli.backends import backends_command
from edgecv.cli.doctor import doctor_command
from edgecv.cli.export import export_command
from edgecv.cli.predict import predict_command


def _one_line_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    click.echo(f"warning: {message}", err=True)


class EdgecvGroup(click.Group):
    """Turns every failure into one ``error:`` line and exit 1; ``--debug`` shows the traceback."""

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
            from edgecv.errors import EdgecvError

            if isinstance(exc, EdgecvError):
                message = str(exc)
            else:
                message = (
                    f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}. "
                    "Run with --debug for the traceback and report it."
                )
            click.echo(f"error: {message}", err=True)
            ctx.exit(1)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug")) or os.environ.get("EDGECV_DEBUG") == "1"


@click.group(cls=EdgecvGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgecv")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """edgecv: run computer-vision detectors fast and reliably on edge hardware."""
    if not debug and os.environ.get("EDGECV_DEBUG") != "1":
        warnings.showwarning = _one_line_warning


cli.add_command(predict_command)
cli.add_command(backends_command)
cli.add_command(doctor_command)
cli.add_command(export_command)


def main() -> None:
    cli(prog_name="edgecv")


if __name__ == "__main__":
    main()

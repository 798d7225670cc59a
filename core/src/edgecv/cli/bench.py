"""``edgecv bench``: placeholder, being implemented."""

from __future__ import annotations

import click


@click.command("bench")
def bench_command() -> None:
    """Not implemented yet."""
    raise click.UsageError("edgecv bench is not implemented yet")

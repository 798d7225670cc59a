"""``edgecv val``: placeholder, being implemented."""

from __future__ import annotations

import click


@click.command("val")
def val_command() -> None:
    """Not implemented yet."""
    raise click.UsageError("edgecv val is not implemented yet")

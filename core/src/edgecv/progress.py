"""Progress of long commands (val, bench, export, ...): on a terminal only, never in piped output.

Library functions that take a while accept ``progress: Progress | None`` and report through it,
stage by stage::

    with progress("calibrating", len(files)) as advance:
        for file in files:
            ...
            advance(1)

``None`` (the library default) reports nothing. The CLI passes ``terminal_progress()``, which draws
a bar with the stage, n/N and the ETA on stderr when stderr is a terminal, and nothing when it is
piped, redirected or the command prints ``--json``.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

Advance = Callable[[int], None]
"""Called with how many steps were just done."""


class Progress(Protocol):
    def __call__(self, stage: str, total: int | None) -> AbstractContextManager[Advance]:
        """A stage of ``total`` steps (``None``: unknown); yields the ``Advance`` to call."""
        ...


@contextlib.contextmanager
def _silent(stage: str, total: int | None) -> Iterator[Advance]:
    yield lambda steps: None


@contextlib.contextmanager
def _bar(stage: str, total: int | None) -> Iterator[Advance]:
    import click

    bar: click._termui_impl.ProgressBar[int]
    with click.progressbar(
        itertools.count() if total is None else None,  # click needs one of the two: a bare counter
        length=total,
        label=stage,
        file=sys.stderr,
        show_eta=total is not None,
        show_pos=True,
    ) as bar:
        yield bar.update


def terminal_progress(enabled: bool = True) -> Progress:
    """A bar per stage on stderr when ``enabled`` and stderr is a terminal; else nothing at all."""
    return _bar if enabled and sys.stderr.isatty() else _silent


def report(progress: Progress | None) -> Progress:
    """``progress``, or a silent one for ``None``: what a library function calls."""
    return progress if progress is not None else _silent

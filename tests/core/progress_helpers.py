"""A ``Progress`` (``edgecv.progress``) that records what a library function reports to it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from edgecv.progress import Advance


class RecordedProgress:
    """``stages``: ``[stage, total, steps advanced]`` for each stage, in the order they began."""

    def __init__(self) -> None:
        self.stages: list[list[Any]] = []

    @contextlib.contextmanager
    def __call__(self, stage: str, total: int | None) -> Iterator[Advance]:
        entry: list[Any] = [stage, total, 0]
        self.stages.append(entry)

        def advance(steps: int) -> None:
            assert steps >= 1
            entry[2] += steps

        yield advance

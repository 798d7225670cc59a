"""A ``Progress`` (``edgecv.progress``) that records what a library function or exporter reports,
for tests: ``with report(progress)(stage, total) as advance`` calls become ``stages`` entries."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from edgecv.progress import Advance


class RecordedProgress:
    """Pass it where a ``Progress`` goes; ``stages`` then lists ``(stage, total, steps advanced)``
    for each stage, in the order the stages began."""

    def __init__(self) -> None:
        self._stages: list[list[str | int | None]] = []

    @property
    def stages(self) -> list[tuple[str | int | None, ...]]:
        return [tuple(entry) for entry in self._stages]

    @contextlib.contextmanager
    def __call__(self, stage: str, total: int | None) -> Iterator[Advance]:
        entry: list[str | int | None] = [stage, total, 0]
        self._stages.append(entry)

        def advance(steps: int) -> None:
            if steps < 1:
                raise AssertionError(f"stage {stage!r} advanced by {steps}")
            done = entry[2]
            assert isinstance(done, int)
            entry[2] = done + steps

        yield advance

"""Options shared by commands that load a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def model_options(func: F) -> F:
    decorators = [
        click.option(
            "--model", "-m", default=None, help="Model file, folder, or registry name [default: yolov8n]."
        ),
        click.option(
            "--backend", "-b", default="auto", show_default=True, help="Backend name (see `edgecv backends`)."
        ),
        click.option("--imgsz", type=int, default=None, help="Input size for models with a dynamic input."),
        click.option(
            "--arch", default=None, help="Force the output decoder: yolov8, yolov5, yolox, end2end."
        ),
        click.option("--names", default=None, help="Text file with one class name per line."),
        click.option("--threads", type=int, default=None, help="Runtime threads (backend option)."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def backend_options(threads: int | None) -> dict[str, Any]:
    return {"threads": threads} if threads is not None else {}


def parse_class_ids(classes: str | None) -> tuple[int, ...] | None:
    """``--classes 0,2`` as class ids (``None``: every class)."""
    from edgecv.errors import ConfigError

    try:
        return tuple(int(c) for c in classes.split(",")) if classes else None
    except ValueError as exc:
        raise ConfigError(
            f"--classes {classes!r} is not a list of class ids", "Pass e.g. --classes 0,2."
        ) from exc

"""Options shared by commands that load a model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

VALUE_RULE = 'VALUE is read as true/false (any case), a number, a JSON "string" or [list], else as text.'
"""How ``KEY=VALUE`` values are read (``parse_option_value``), for each command's --help."""
BACKEND_OPTION_HELP = (
    "Backend option KEY=VALUE, repeatable: e.g. spinning=false (onnx), providers=CUDA (onnx), "
    f"vulkan=true (ncnn); the backend refuses keys it does not know. {VALUE_RULE}"
)


def option_flag(*names: str, help: str = BACKEND_OPTION_HELP) -> Callable[[F], F]:
    """The repeatable ``KEY=VALUE`` flag (``-o/--option`` on most commands, ``--option`` on export)."""
    return click.option(*names, "option_pairs", multiple=True, metavar="KEY=VALUE", help=help)


def model_options(func: F) -> F:
    decorators = [
        click.option(
            "--model",
            "-m",
            default=None,
            help="Model file, folder, or registry name [default: yolox-nano, inside edgecv].",
        ),
        click.option(
            "--backend", "-b", default="auto", show_default=True, help="Backend name (see `edgecv backends`)."
        ),
        click.option("--imgsz", type=int, default=None, help="Input size for models with a dynamic input."),
        click.option(
            "--arch", default=None, help="Force the output decoder: yolov8, yolov5, yolox, end2end."
        ),
        click.option("--names", default=None, help="Text file with one class name per line."),
        click.option("--threads", type=int, default=None, help="Runtime threads (the same as -o threads=N)."),
        option_flag("--option", "-o"),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def backend_options(threads: int | None, pairs: Iterable[str] = ()) -> dict[str, Any]:
    """The backend options of ``--threads`` and ``-o KEY=VALUE`` (giving threads both ways is an error).

    The backend checks the keys and values when the model loads (``ConfigError`` for unknown ones).
    """
    from edgecv.errors import ConfigError

    options = parse_options(pairs, "-o")
    reserved = _load_keywords() & options.keys()
    if reserved:
        key = sorted(reserved)[0]
        raise ConfigError(
            f"-o {key} is edgecv's own setting, not a backend option", f"Use --{key.replace('_', '-')}."
        )
    if threads is not None:
        if "threads" in options:
            raise ConfigError(
                f"--threads {threads} and -o threads={options['threads']} both set the threads",
                "Pass one of them (--threads N is short for -o threads=N).",
            )
        options["threads"] = threads
    return options


def parse_options(pairs: Iterable[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a dict (values read by ``parse_option_value``); each key at most once."""
    from edgecv.errors import ConfigError

    options: dict[str, Any] = {}
    given: dict[str, str] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        key = key.strip()
        if not equals or not key.isidentifier():
            raise ConfigError(
                f"{flag} {pair!r} is not KEY=VALUE", f"Pass e.g. {flag} threads=4 (one option per {flag})."
            )
        if key in options:
            raise ConfigError(
                f"{flag} {key} is given twice ({given[key]} and {pair})", "Give each option once."
            )
        options[key], given[key] = parse_option_value(text), pair
    return options


def parse_option_value(text: str) -> Any:
    """``true``/``false`` in any case -> bool; a JSON number -> int or float; a JSON string in
    double quotes or a JSON list of such scalars -> that; anything else -> the text as is."""
    import json
    import math

    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    try:
        value = json.loads(text)
    except ValueError:
        return text
    scalar = (bool, int, float, str)
    if isinstance(value, float) and not math.isfinite(value):  # json reads NaN and Infinity
        return text
    if isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value)):
        return value
    return text  # null, objects


def export_options(pairs: Iterable[str], given: Mapping[str, Any]) -> dict[str, Any]:
    """``edgecv export --option`` pairs, which must not repeat a setting the command has a flag for."""
    from edgecv.errors import ConfigError

    options = parse_options(pairs, "--option")
    if "progress" in options:
        raise ConfigError(
            "--option progress is not an export option", "Progress shows by itself on a terminal."
        )
    taken = given.keys() & options.keys()
    if taken:
        key = sorted(taken)[0]
        raise ConfigError(f"--option {key} is set by edgecv export itself", f"Use --{key.replace('_', '-')}.")
    return options


def _load_keywords() -> set[str]:
    """``edgecv.load``'s own keywords (model, backend, conf, ...): everything else goes to the backend."""
    import inspect

    from edgecv.model import load

    parameters = inspect.signature(load).parameters.values()
    return {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD}


def parse_class_ids(classes: str | None) -> tuple[int, ...] | None:
    """``--classes 0,2`` as class ids (``None``: every class)."""
    from edgecv.errors import ConfigError

    try:
        return tuple(int(c) for c in classes.split(",")) if classes else None
    except ValueError as exc:
        raise ConfigError(
            f"--classes {classes!r} is not a list of class ids", "Pass e.g. --classes 0,2."
        ) from exc

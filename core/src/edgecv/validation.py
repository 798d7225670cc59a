"""Checks on values users give (CLI options and Python arguments alike), each raising ``ConfigError``.

One place for each rule, so ``edgecv predict --conf 2`` and ``model(img, conf=2)`` fail with the
same message. The messages name the option as Python spells it (``conf``, ``max_det``); the hint
shows both spellings where they differ.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from edgecv.errors import ConfigError

LISTED = 12
"""Known names listed in full by ``unknown_names``; a longer list is cut with its length."""


def check_options(options: Mapping[str, Any], known: Iterable[str], runtime: str) -> None:
    """Reject options ``runtime`` does not know (``ConfigError`` listing the known ones)."""
    allowed = set(known)
    unknown = set(options) - allowed
    if unknown:
        raise ConfigError(
            f"Unknown {runtime} option(s): {', '.join(sorted(unknown))}",
            f"Known options: {', '.join(sorted(allowed))}.",
        )


def positive_int(options: Mapping[str, Any], name: str, runtime: str) -> int | None:
    """Option ``name`` (e.g. ``threads``) as a positive ``int``, ``None`` when absent; else ``ConfigError``.

    ``True`` is refused although Python counts it as an int: no runtime means 1 by it.
    """
    value = options.get(name)
    if value is not None and not is_count(value):
        raise ConfigError(
            f"{runtime} {name} must be a positive integer, got {value!r}", f"Pass e.g. {name}=4."
        )
    return value


def is_count(value: object) -> bool:
    """A positive ``int``, not ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def fraction(value: object, name: str, meaning: str, example: str) -> None:
    """``value`` is a finite number from 0 to 1 (``nan`` and ``inf`` are refused too)."""
    if isinstance(value, bool) or not (
        isinstance(value, numbers.Real) and math.isfinite(value) and 0.0 <= float(value) <= 1.0
    ):
        raise ConfigError(
            f"{name} ({meaning}) must be a number from 0 to 1, got {value!r}",
            f"Pass e.g. --{name.replace('_', '-')} {example} ({name}={example} in Python).",
        )


def count(value: object, name: str, meaning: str, example: int) -> None:
    """``value`` is a positive integer."""
    if not is_count(value):
        raise ConfigError(
            f"{name} ({meaning}) must be a positive integer, got {value!r}",
            f"Pass e.g. --{name.replace('_', '-')} {example} ({name}={example} in Python).",
        )


def class_ids(value: object, class_count: int | None) -> None:
    """``value`` is ``None`` (every class) or a non-empty sequence of class ids, each below
    ``class_count`` (the model's; ``None``: not known here)."""
    if value is None:
        return
    top = f"from 0 to {class_count - 1}" if class_count else "(class ids)"
    hint = f"Pass ids {top}, e.g. --classes 0,2 (classes=[0, 2] in Python)."
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise ConfigError(f"classes must be a list of class ids, got {value!r}", hint)
    if not value:
        raise ConfigError("classes is empty: no class could be detected", "Leave it out to keep every class.")
    for item in value:
        if not isinstance(item, numbers.Integral) or isinstance(item, bool):
            raise ConfigError(f"classes holds {item!r}, which is not a class id", hint)
        if int(item) < 0 or (class_count is not None and int(item) >= class_count):
            limit = f": the model has {class_count} classes (0 to {class_count - 1})" if class_count else ""
            raise ConfigError(f"Class id {item} is out of range{limit}", hint)


def unknown_names(
    kind: str, unknown: Collection[str], known: Collection[str], hint: str, plural: str = ""
) -> ConfigError:
    """A ``ConfigError`` naming each unknown ``kind`` (``plural``: ``kind`` + s) with its close
    matches among ``known``, then ``hint`` and the known names (the first ``LISTED`` of a long list)."""
    parts = []
    for name in sorted(unknown):
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
        close += [k for k in known if k.lower() == name.lower() and k not in close]
        parts.append(f"{name!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
    shown = list(known)[:LISTED]
    listed = ", ".join(shown) + (f", … ({len(known)} in all)" if len(known) > LISTED else "")
    kinds = (plural or f"{kind}s") if len(parts) > 1 else kind
    return ConfigError(f"Unknown {kinds}: {', '.join(parts)}", f"{hint} Known: {listed or 'none'}.")

"""Errors that reach users: each carries what happened and what to do about it.

The CLI prints ``str(error)`` as a single line; nothing below the CLI prints.
"""

from __future__ import annotations


class EdgecvError(Exception):
    """Base class: ``message`` says what happened, ``hint`` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text = f"{text.rstrip('.')}. {' '.join(self.hint.split())}"
        return text


class ImageError(EdgecvError):
    """An input image is missing, unreadable or not an image."""


class ModelError(EdgecvError):
    """A model file is missing, corrupt, or not in a format the backend reads."""


class DecodeError(EdgecvError):
    """The model's outputs have a layout no decoder understands."""


class BackendError(EdgecvError):
    """An unknown backend, or one whose runtime or hardware is missing."""


class PluginError(EdgecvError):
    """A plugin failed to import or misbehaved."""


class ConfigError(EdgecvError):
    """An option or environment variable has a value edgecv cannot use."""


class RegistryError(EdgecvError):
    """A model name cannot be resolved, downloaded, or verified."""


def one_line(error: BaseException | str, limit: int | None = 200) -> str:
    """``error``'s message on one line (runtimes' texts span lines), cut to ``limit`` characters."""
    text = " ".join(str(error).split())
    return text if limit is None else text[:limit]

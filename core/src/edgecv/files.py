"""Writing files so that a failure never leaves half a file behind, nor writes through a planted link."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgecv.errors import ConfigError

# mkstemp adds ".XXXXXXXX.part" (15 characters) to the prefix: a long target name still fits NAME_MAX.
_PREFIX_CHARACTERS = 64


def fresh_partial(target: Path, suffix: str = ".part") -> Path:
    """A new empty file beside ``target`` with an unpredictable name ending in ``suffix``, with the
    permissions a plain ``open(target, "w")`` would give (mkstemp's are 0600).

    ``mkstemp`` makes a new name and opens it with ``O_EXCL``, so a file or symlink planted at a
    predictable name is never written through.
    """
    handle, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name[:_PREFIX_CHARACTERS]}.", suffix=suffix
    )
    os.close(handle)
    _default_mode(Path(name))
    return Path(name)


def _default_mode(path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


@contextlib.contextmanager
def atomic_target(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``target`` (``fresh_partial``); on success rename it
    onto ``target``.

    The rename replaces a link at ``target`` itself, not what it points to. On any exception the
    partial file is removed and ``target`` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = fresh_partial(target)
    try:
        yield partial
        _default_mode(partial)  # again: a writer may have replaced the file rather than filled it
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def check_writable(path: Path, option: str, *, folder: bool = False) -> None:
    """Fail before a long job, not after it, when ``path`` cannot be written.

    ``path``'s folder (``path`` itself when it is a folder, or ``folder`` says it is to be one) is
    created and must take a new file: one is created there and removed again, the only check that
    holds for root, read-only mounts and pseudo file systems such as /proc. ``option`` names the
    setting in the ``ConfigError`` (e.g. ``-o``).
    """
    where = path if folder or path.is_dir() else path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=where, prefix=".edgecv-", suffix=".probe")
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"Cannot write {option} {path}: {where} does not take new files ({reason})",
            f"Pass {option} a path in a folder you can write to.",
        ) from exc


def check_output_file(path: Path, option: str, example: str) -> None:
    """``check_writable`` for an output file: ``path`` must not be a folder (``example`` names a file)."""
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder", f"Pass a file name such as {path / example}.")
    check_writable(path, option)


@contextlib.contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """Run in ``folder``, then back where the process was, whatever happens (converters that
    write logs or read samples in the current folder; ``contextlib.chdir`` is Python 3.11+)."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (what sidecars and caches record)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

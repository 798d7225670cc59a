"""Install hints: the one way edgecv writes a ``pip install`` command into a message."""

from __future__ import annotations

import re
import shlex

FIND_LINKS = "dist"
"""Where ``pip`` finds edgecv's own packages until they are on PyPI: the folder ``make dist`` fills
(copy it to the device with the wheels; pip skips a missing folder with a warning)."""
_EDGECV_PACKAGE = re.compile(r"edgecv(?:[-_.]|$)", re.IGNORECASE)


def pip_hint(*requirements: str) -> str:
    """The ``pip install`` command for ``requirements``, to print as it works pasted into any shell.

    Every install hint edgecv prints comes from here: each requirement is quoted where a shell
    would read it (``'edgecv-onnx[export]'``: zsh expands brackets; ``'onnxruntime>=1.17'``: ``>``
    redirects), and edgecv's own packages get ``--find-links dist``. Explanations go after the
    command, in parentheses: ``f"{pip_hint('ncnn')} (the NCNN runtime)"``.
    """
    if not requirements:
        raise ValueError("pip_hint needs at least one requirement")
    words = ["pip", "install"]
    if any(_EDGECV_PACKAGE.match(requirement) for requirement in requirements):
        words += ["--find-links", FIND_LINKS]
    return shlex.join([*words, *requirements])

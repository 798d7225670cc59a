"""What the ``opencv-dnn`` backend registers (walked through in docs/writing-a-backend.md).

edgecv imports this module through the entry point in pyproject.toml, even for a quick
``edgecv backends``, so it stays cheap: OpenCV is imported by ``session.py``, which
``open_session`` imports the first time a model is loaded with this backend.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgecv.backend import Availability, Backend, Session, hookimpl

INSTALL_HINT = "pip install opencv-python-headless (4.8 or newer, with the dnn module)."


def check() -> Availability:
    """Cheap availability check: look for cv2 without importing it (``edgecv backends`` calls this)."""
    if importlib.util.find_spec("cv2") is None:
        return Availability(False, "OpenCV (cv2) is not installed", INSTALL_HINT)
    return Availability(True)


def open_session(path: Path, options: Mapping[str, Any]) -> Session:
    from edgecv_opencv_dnn.session import DnnSession  # lazy: importing cv2 is the load's cost

    return DnnSession.open(path, options)


@hookimpl
def edgecv_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        Backend(
            name="opencv-dnn",
            open=open_session,
            formats=(".onnx",),
            # Below edgecv-onnx (50): backend="auto" keeps choosing ONNX Runtime when both are installed.
            priority=10,
            check=check,
            description="OpenCV DNN module on the CPU (example third-party backend)",
            install_hint=INSTALL_HINT,
        )
    )

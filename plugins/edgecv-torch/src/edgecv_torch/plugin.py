"""What this plugin registers. edgecv imports this module on every run, so it imports no torch."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgecv.backend import Availability, Backend, Session, hookimpl, pip_hint

# The plugin is installed when this shows: what is missing is torch itself (CPU wheel for laptops).
INSTALL_HINT = (
    f"{pip_hint('torch')} (for the CPU-only wheel, add --index-url https://download.pytorch.org/whl/cpu)"
)
FORMATS = (".pt", ".pt2", ".torchscript")


def check() -> Availability:
    if importlib.util.find_spec("torch") is None:
        return Availability(False, "torch is not installed", INSTALL_HINT)
    return Availability(True)


def open_session(path: Path, options: Mapping[str, Any]) -> Session:
    from edgecv_torch.session import TorchSession

    return TorchSession.open(path, options)


@hookimpl
def edgecv_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        Backend(
            name="torch",
            open=open_session,
            formats=FORMATS,
            priority=10,
            check=check,
            description="PyTorch reference backend: edgecv-torch checkpoints (.pt), torch.export "
            "programs (.pt2), TorchScript (CPU; CUDA, FP16 with half=true)",
            install_hint=INSTALL_HINT,
        )
    )

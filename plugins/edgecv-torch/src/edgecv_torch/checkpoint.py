"""edgecv-torch checkpoints: a model's weights and metadata, loadable without running any code.

A checkpoint is ``torch.save`` of a plain dict — ``format``, ``format_version``, ``arch``,
``state_dict`` (tensors only), ``metadata`` (strings) — and is read back with
``torch.load(weights_only=True)``, which unpickles tensors and containers and refuses anything
else. The architecture is rebuilt from the weights (``YOLOv8.from_state_dict``), so a pruned model
round-trips with its own channel counts. A pickled ``nn.Module`` (``torch.save(model)``) is refused:
loading one would execute whatever code its pickle names.
"""

from __future__ import annotations

import pickle
import shlex
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from edgecv.backend import ModelError, atomic_target
from edgecv_torch import __version__
from edgecv_torch.yolov8 import YOLOv8

FORMAT = "edgecv-torch-checkpoint"
FORMAT_VERSION = 1
ARCHITECTURES = ("yolov8",)
_HINT = "Pass a checkpoint written by edgecv-torch (edgecv compress prune/distill, or checkpoint.save)."


def save(model: YOLOv8, path: Path, extra: Mapping[str, str] | None = None) -> Path:
    """Write ``model`` to ``path`` atomically; ``extra`` joins its metadata (strings)."""
    metadata = {**model.metadata, **{str(k): str(v) for k, v in (extra or {}).items()}}
    metadata.setdefault("edgecv_torch", __version__)
    record: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": "yolov8",
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        "metadata": metadata,
    }
    with atomic_target(path) as partial:
        torch.save(record, partial)
    return path


def load(path: Path) -> YOLOv8:
    """The model in the checkpoint ``path`` (on the CPU, in eval mode); ``ModelError`` for anything
    that is not an edgecv-torch checkpoint, including a pickled module (never unpickled)."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # not a pickle of objects: not a checkpoint at all
            raise ModelError(f"{path.name} is not a readable torch checkpoint", _HINT) from exc
        raise ModelError(
            f"{path.name} holds pickled Python objects, not only weights; edgecv does not unpickle them "
            "(loading would run the code they name)",
            "Save the weights as an edgecv-torch checkpoint (checkpoint.save), a torch.export program "
            "(.pt2) or TorchScript; for an Ultralytics YOLOv8 .pt you trust, convert it once: "
            f"edgecv compress from-ultralytics -m {shlex.quote(str(path))} -o model.pt",
        ) from exc
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise ModelError(
            f"{path.name} is not a readable torch checkpoint: {_first_line(exc)}", _HINT
        ) from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelError(f"{path.name} is a torch file but not an edgecv-torch checkpoint", _HINT)
    if record.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{path.name} is checkpoint format {record.get('format_version')!r}; this edgecv-torch reads "
            f"{FORMAT_VERSION}",
            "Upgrade edgecv-torch.",
        )
    if record.get("arch") not in ARCHITECTURES:
        raise ModelError(f"{path.name}: unknown architecture {record.get('arch')!r}", _HINT)
    state, metadata = record.get("state_dict"), record.get("metadata")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path.name}: 'state_dict' is not a mapping of tensors", _HINT)
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ModelError(f"{path.name}: 'metadata' must map strings to strings", _HINT)
    return YOLOv8.from_state_dict(state, metadata, source=path.name)


def _first_line(exc: BaseException) -> str:
    """torch's load errors run to many lines of advice; the first says what happened."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

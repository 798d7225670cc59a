"""What a torch file holds, decided and checked before torch reads any of it.

``archive_kind`` tells an edgecv-torch checkpoint, a ``torch.export`` program and TorchScript
apart by their zip entries alone. ``check_exported`` vets a ``.pt2`` before ``torch.export.load``
sees it: that loader (torch 2.13) unpickles payloads flagged ``use_pickle`` with
``weights_only=False``, falls back to ``weights_only=False`` for sample inputs, ``pickle.loads``
opaque constants, loads AOTInductor libraries, resolves node targets by name anywhere under
``torch`` and parses symbolic shapes with sympy; so archives with any of those, or with a node
that is not an ATen/prims/quantized operator or ``operator.getitem``, are refused, and the load
itself runs inside ``weights_only_loads``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from edgecv.backend import ModelError, one_line, pip_hint

MAX_METADATA_BYTES = 1 << 20
MAX_GRAPH_BYTES = 64 << 20
"""The largest ``models/*.json`` graph of a ``.pt2`` read to check its operators."""
SAFE_TARGET = re.compile(r"torch\.ops\.(aten|prims|quantized_decomposed|torchao)\.(\w+)(?:\.(\w+))?")
"""A node may call a registered operator of these libraries (PT2E-quantized programs use the last
two), named as ``torch.ops.NAMESPACE.OP[.OVERLOAD]``, or ``_operator.getitem`` (tuple outputs)."""
OPERATOR_DUNDERS = frozenset({"__and__", "__or__", "__xor__", "__lshift__", "__rshift__"})

Kind = Literal["checkpoint", "exported", "torchscript"]
SAVE_HINT = (
    "Save it as an edgecv-torch checkpoint (checkpoint.save), a torch.export program (.pt2) or TorchScript."
)


def archive_kind(path: Path) -> Kind:
    """What ``path`` holds, from its zip entries alone (nothing is unpickled or run)."""
    if path.is_dir():
        raise ModelError(
            f"{path} is a folder, not a PyTorch file", "Pass the .pt, .pt2 or .torchscript file."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(
            f"{path.name} is not a PyTorch archive (a zip file): {one_line(exc)}",
            "The file is truncated, corrupt, or from torch < 1.6: save it again with a current torch.",
        ) from exc
    inner = {name.split("/", 1)[1] for name in names if "/" in name}
    if "archive_format" in inner or any(name.startswith("models/") for name in inner):
        return "exported"
    if "constants.pkl" in inner and any(name.startswith("code/") for name in inner):
        return "torchscript"
    if "data.pkl" in inner:
        return "checkpoint"
    raise ModelError(f"{path.name} is a zip file but no PyTorch model", SAVE_HINT)


def check_exported(path: Path) -> set[str]:
    """Refuse a ``.pt2`` whose loading or running could execute anything but torch operators;
    return the operator libraries its graph calls (``aten``, ``quantized_decomposed``...)."""
    libraries: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        entries = {name.split("/", 1)[1]: name for name in archive.namelist() if "/" in name}

        def refuse(why: str) -> ModelError:
            return ModelError(
                f"{path.name} is a torch.export program that {why}; "
                "edgecv does not load it (it could run code)",
                "Export the model again with torch.export (static shapes, ATen operators only).",
            )

        for inner in entries:
            if inner.startswith("data/aotinductor/"):
                raise refuse("holds AOTInductor compiled code")
            if inner.startswith(("data/weights/", "data/constants/")) and inner.endswith(".pt"):
                raise refuse("holds weights in the legacy pickled format")
            if inner.startswith("data/constants/") and inner.rsplit("/", 1)[1].startswith(
                ("custom_obj_", "opaque_obj_")
            ):
                raise refuse("holds pickled objects")
        for inner, name in entries.items():
            if inner.startswith("data/") and inner.endswith("_config.json"):
                config = _json(archive, name, MAX_METADATA_BYTES * 16, refuse)
                payloads = config.get("config") if isinstance(config, dict) else None
                if not isinstance(payloads, dict):
                    raise refuse(f"has a malformed {inner}")
                if any(isinstance(meta, dict) and meta.get("use_pickle") for meta in payloads.values()):
                    raise refuse("holds pickled tensors")
            elif inner.startswith("models/") and inner.endswith(".json"):
                unsafe = _unsafe_node(_json(archive, name, MAX_GRAPH_BYTES, refuse), libraries)
                if unsafe:
                    raise refuse(unsafe)
    return libraries


def _json(archive: zipfile.ZipFile, name: str, limit: int, refuse: Callable[[str], ModelError]) -> Any:
    if archive.getinfo(name).file_size > limit:
        raise refuse(f"has a {name} larger than {limit >> 20} MiB")
    try:
        return json.loads(archive.read(name))
    except (ValueError, RecursionError, zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"Cannot read {name} in the archive: {one_line(exc)}", "Export it again.") from exc


def _unsafe_node(value: Any, libraries: set[str]) -> str:
    """Why the serialized graph ``value`` is unsafe to deserialize and run, or ``""``; adds the
    operator libraries it calls to ``libraries``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            target = item.get("target")
            if isinstance(target, str) and "inputs" in item:
                library = _operator_library(target)
                if library is None:
                    return f"calls {target[:80]!r}, which is not a torch operator"
                libraries.add(library)
            if "as_expr" in item or item.get("range_constraints"):
                return "has symbolic shapes"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return ""


def _operator_library(target: str) -> str | None:
    """The library of the operator ``target`` names, ``None`` when it names anything else: the
    deserializer resolves it attribute by attribute from ``torch``, so a private name on the way
    (``__globals__``...) could reach any Python object."""
    if target == "_operator.getitem":
        return "operator"
    match = SAFE_TARGET.fullmatch(target)
    if match is None:
        return None
    library, operator, overload = match.group(1), match.group(2), match.group(3) or ""
    if (operator.startswith("_") and operator not in OPERATOR_DUNDERS) or overload.startswith("_"):
        return None
    return library


def register_operators(libraries: set[str]) -> None:
    """Register the quantization operators a PT2E-quantized program calls (torch's own, and torchao's
    when it is installed): the deserializer finds only registered operators."""
    if "quantized_decomposed" in libraries:
        importlib.import_module("torch.ao.quantization.fx._decomposed")
    if "torchao" in libraries:
        try:
            importlib.import_module("torchao.quantization")
        except ImportError as exc:
            raise ModelError(
                "This program calls torchao operators, and torchao is not installed",
                f"Install it: {pip_hint('edgecv-torch[compress]')}.",
            ) from exc


@contextlib.contextmanager
def weights_only_loads() -> Iterator[None]:
    """Every ``torch.load`` inside (torch's own ``weights_only=False`` calls too) loads weights only."""
    key = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
    previous = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous

"""The file format of the fake accelerator models in plugins' tests (a TensorRT engine, a HEF).

A fake model file is ``magic`` + one JSON header line + the ONNX model it was "compiled" from, so
a fake runtime can compute real outputs with ONNX Runtime. Only the fakes read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def pack(magic: bytes, header: Mapping[str, Any], model: bytes) -> bytes:
    return magic + json.dumps(header, sort_keys=True).encode() + b"\n" + model


def unpack(magic: bytes, data: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(header, ONNX bytes) of a fake model file; ``None`` for anything else."""
    if not data.startswith(magic):
        return None
    line, newline, model = data[len(magic) :].partition(b"\n")
    try:
        header = json.loads(line)
    except ValueError:
        return None
    if not newline or not isinstance(header, dict) or not model:
        return None
    return header, model

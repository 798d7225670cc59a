"""Ultralytics ``metadata.yaml`` beside a .tflite file: found, parsed (no PyYAML), as core metadata.

Ultralytics writes the export metadata (names, imgsz, stride, task, ...) next to the TFLite files as
``metadata.yaml``. Copies are often renamed (``yolov8n_tflite_metadata.yaml`` for the files
``yolov8n_*.tflite``), so the file is looked up as: ``<stem>_metadata.yaml``, then ``metadata.yaml``,
then any ``*metadata.yaml`` whose name prefix (before ``_tflite``/``_metadata``) starts the model's stem.
Values are returned as strings in the form the core parses (``"{0: 'person'}"``, ``"[640, 640]"``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_FORMAT_WORDS = ("tflite", "saved_model", "metadata")


def find_metadata_file(model: Path) -> Path | None:
    folder = model.parent
    exact = folder / f"{model.stem}_metadata.yaml"
    if exact.is_file():
        return exact
    plain = folder / "metadata.yaml"
    if plain.is_file():
        return plain
    best: tuple[int, Path] | None = None
    stem = model.stem.lower()
    for candidate in sorted(folder.glob("*metadata.yaml")):
        prefix = candidate.name.lower()[: -len("metadata.yaml")].rstrip("_-.")
        for word in _FORMAT_WORDS:
            prefix = re.sub(rf"[_-]{word}$", "", prefix)
        if not prefix:
            continue
        matches = stem == prefix or stem.startswith((prefix + "_", prefix + "-"))
        if matches and (best is None or len(prefix) > best[0]):
            best = (len(prefix), candidate)
    return best[1] if best else None


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text.startswith("[") and text.endswith("]"):
        return [_scalar(part) for part in text[1:-1].split(",") if part.strip()]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*(e-?\d+)?", text):
        return float(text)
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    return text


def parse_simple_yaml(text: str) -> dict[str, Any]:
    """Top-level ``key: value`` pairs, ``- item`` lists and one-level ``k: v`` maps (Ultralytics')."""
    result: dict[str, Any] = {}
    key: str | None = None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indented = line[0] in " \t-"
        stripped = line.strip()
        if not indented:
            name, sep, value = stripped.partition(":")
            if not sep:
                continue
            key = name.strip()
            result[key] = _scalar(value) if value.strip() else None
            continue
        if key is None:
            continue
        if stripped.startswith("- ") or stripped == "-":
            current = result.get(key)
            items = current if isinstance(current, list) else []
            items.append(_scalar(stripped[1:]))
            result[key] = items
            continue
        name, sep, value = stripped.partition(":")
        if sep:
            current = result.get(key)
            mapping = current if isinstance(current, dict) else {}
            mapping[_scalar(name)] = _scalar(value)
            result[key] = mapping
    return result


def read_metadata(model: Path) -> dict[str, str]:
    """The metadata beside ``model`` as strings the core parses; empty when there is none."""
    file = find_metadata_file(model)
    if file is None:
        return {}
    try:
        parsed = parse_simple_yaml(file.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return {}
    metadata = {k: (v if isinstance(v, str) else repr(v)) for k, v in parsed.items() if v is not None}
    metadata["edgecv_metadata_file"] = file.name
    return metadata

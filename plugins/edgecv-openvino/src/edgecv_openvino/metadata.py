"""A model's metadata (class names, input size, task...) as the ``Mapping[str, str]`` the core reads.

Where it comes from, later sources overriding earlier ones:

1. an ONNX file's ``metadata_props``: OpenVINO's ONNX reader keeps them as rt_info ``framework``
   (the same keys and strings ONNX Runtime's ``custom_metadata_map`` gives the onnx backend);
2. Ultralytics' IR rt_info ``model_info``: only ``labels`` is used, as ``names``, when nothing else
   names the classes (Ultralytics writes them space-separated, spaces in a name made ``_``);
3. ``metadata.yaml`` beside an IR (Ultralytics' and edgecv's exports write one);
4. rt_info ``edgecv``: what ``edgecv export --to openvino`` records, one string per key.

Metadata is untrusted: ``metadata.yaml`` is read up to ``MAX_METADATA_BYTES`` with PyYAML's safe
loader without aliases (a few lines of aliases expand to gigabytes when flattened).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import openvino as ov
import yaml

from edgecv.backend import ModelError, one_line

MAX_METADATA_BYTES = 1 << 20
EDGECV_SECTION = "edgecv"
# Nested maps that edgecv's ONNX export stores as JSON strings (``edgecv_input``...): kept as JSON.
JSON_KEYS = frozenset({"edgecv_input", "edgecv_versions", "edgecv_calibration"})


def read(model: ov.Model, metadata_file: Path | None) -> dict[str, str]:
    """Every source above, merged; a broken ``metadata.yaml`` raises ``ModelError``."""
    metadata = rt_section(model, "framework")
    labels = rt_section(model, "model_info").get("labels")
    if labels and "names" not in metadata:
        metadata["names"] = repr(dict(enumerate(labels.split())))
    if metadata_file is not None:
        metadata.update(read_yaml(metadata_file))
    metadata.update(rt_section(model, EDGECV_SECTION))
    return metadata


def rt_section(model: ov.Model, name: str) -> dict[str, str]:
    """The string values of rt_info section ``name`` (``{}`` when the model has none)."""
    if not model.has_rt_info([name]):
        return {}
    section = model.get_rt_info([name]).value
    if not isinstance(section, Mapping):
        return {}
    return {str(key): _text(value) for key, value in section.items()}


def _text(value: Any) -> str:
    """An rt_info value: a ``str`` from the ONNX reader, an ``OVAny`` from an IR."""
    return str(value.astype(str)) if isinstance(value, ov.OVAny) else str(value)


def read_yaml(path: Path) -> dict[str, str]:
    """``metadata.yaml``'s top-level keys, values flattened to the strings the core parses."""
    hint = "Fix it (class names under names:, input size under imgsz:) or delete it and pass --imgsz/--names."
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_METADATA_BYTES + 1)
        if len(data) > MAX_METADATA_BYTES:
            raise ModelError(f"{path} is larger than {MAX_METADATA_BYTES >> 20} MiB", hint)
        text = data.decode("utf-8")
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise yaml.YAMLError("anchors and aliases are not allowed in model metadata")
        parsed = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise ModelError(f"Cannot read {path}: {one_line(exc)}", hint) from exc
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise ModelError(f"{path} is a YAML {type(parsed).__name__}, not a mapping of keys", hint)
    return flatten(parsed)


def flatten(data: Mapping[Any, Any]) -> dict[str, str]:
    """String values: lists and maps as Python literals (Ultralytics' ONNX form), ``JSON_KEYS`` as JSON."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if str(key) in JSON_KEYS and isinstance(value, (dict, list)):
            flat[str(key)] = json.dumps(value)
        elif isinstance(value, (dict, list)):
            flat[str(key)] = repr(value)
        else:
            flat[str(key)] = str(value)
    return flat

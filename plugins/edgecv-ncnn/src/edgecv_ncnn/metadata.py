"""``metadata.yaml`` of an NCNN model folder, read and written without PyYAML.

Ultralytics' NCNN export writes it with ``yaml.safe_dump(sort_keys=False)``, and edgecv's export writes
the same layout, so only that block style is needed: a top-level mapping whose values are scalars,
block lists of scalars (``imgsz:`` / ``- 640``), flow lists (``[1, 3, 640, 640]``) or one level of
mapping (``names:`` / ``  0: person``; ``args:`` / ``  batch: 1``). Scalars are plain, 'single' or
"double" quoted; long plain scalars may continue on indented lines; ``|``/``>`` block scalars are
joined. A key whose block uses anything else (deeper nesting, anchors, flow mappings) is kept as
its raw text, except ``names`` and ``imgsz``, which edgecv needs: those raise ``MetadataError``.

``flatten`` turns the parsed file into the ``Mapping[str, str]`` the core reads (lists and maps as
Python literals, like Ultralytics' ONNX metadata); ``dump`` writes what ``parse`` reads back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# Keys edgecv cannot do without: a malformed value must fail loudly, not fall back silently.
REQUIRED_SHAPES = ("names", "imgsz")
# Nested maps the ONNX export stores as JSON strings; the NCNN metadata flattens them the same way.
JSON_KEYS = frozenset({"edgecv_input", "edgecv_versions", "edgecv_calibration"})

_INT = re.compile(r"[-+]?[0-9]+")
# As PyYAML resolves them (YAML 1.1): a float needs a dot, "1e5" is a string.
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?")
_SPECIAL_FLOATS = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
_FALSE = frozenset({"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})
# A plain scalar edgecv may write unquoted: no YAML indicator anywhere it would change the meaning.
_SAFE_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_ .()/+-]*[A-Za-z0-9_.)/+-]|[A-Za-z_]")


class MetadataError(ValueError):
    """The metadata file is not in the YAML subset above; the message names the line."""


def parse(text: str) -> dict[str, Any]:
    """The top-level mapping of a ``metadata.yaml`` text, values as Python scalars, lists and dicts."""
    result: dict[str, Any] = {}
    for key, inline, block, number in _top_level_blocks(text):
        try:
            result[key] = _block_value(inline, block)
        except MetadataError as exc:
            if key in REQUIRED_SHAPES:
                raise MetadataError(f"line {number} ({key}): {exc}") from exc
            result[key] = "\n".join([inline, *(line.strip() for _, line in block)]).strip()
    return result


def flatten(data: Mapping[str, Any]) -> dict[str, str]:
    """String values for ``SessionSpec.metadata``: lists and maps as Python literals (or JSON)."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if key in JSON_KEYS and isinstance(value, (dict, list)):
            flat[key] = json.dumps(value)
        elif isinstance(value, (dict, list)):
            flat[key] = repr(value)
        else:
            flat[key] = str(value)
    return flat


def dump(data: Mapping[str, Any], header: str = "") -> str:
    """YAML text for ``data`` (scalars, lists of scalars, maps of scalars or flat lists) that
    ``parse`` and PyYAML both read back to the same values."""
    lines = [f"# {line}" for line in header.splitlines()]
    for key, value in data.items():
        name = _scalar_text(key) if not isinstance(key, str) or not _is_safe_key(key) else key
        if isinstance(value, dict):
            lines.append(f"{name}:")
            for sub_key, sub_value in value.items():
                sub_name = sub_key if isinstance(sub_key, int) else _scalar_text(sub_key)
                lines.append(f"  {sub_name}: {_inline_text(sub_value)}")
        elif isinstance(value, (list, tuple)):
            lines.append(f"{name}:")
            lines.extend(f"- {_scalar_text(item)}" for item in value)
        else:
            lines.append(f"{name}: {_scalar_text(value)}")
    return "\n".join(lines) + "\n"


# --- reading ---------------------------------------------------------------------------------


def _top_level_blocks(text: str) -> list[tuple[str, str, list[tuple[int, str]], int]]:
    """(key, inline value, indented lines below it, line number) for each top-level key."""
    blocks: list[tuple[str, str, list[tuple[int, str]], int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
            continue
        if line[0] in " \t" or line.startswith("- ") or line == "-":
            if line[0] == "-" and not blocks:
                raise MetadataError(f"line {number}: the file is a list, expected a mapping of keys")
            if not blocks:
                raise MetadataError(f"line {number}: indented text before the first key")
            blocks[-1][2].append((number, line))
            continue
        key, value = _split_key(stripped, number)
        blocks.append((str(key), value, [], number))
    return blocks


def _split_key(line: str, number: int) -> tuple[Any, str]:
    """``key: value`` -> (key, value text); quoted keys are unquoted."""
    if line[0] in "'\"":
        end = _closing_quote(line, 0)
        if end < 0 or not line[end + 1 :].lstrip().startswith(":"):
            raise MetadataError(f"line {number}: malformed quoted key")
        key = _scalar(line[: end + 1])
        return key, line[end + 1 :].lstrip()[1:].strip()
    match = re.match(r"(.*?):(?:\s+(.*))?$", line)
    if match is None or match.group(1).strip() == "":
        raise MetadataError(f"line {number}: expected 'key: value', found {line[:60]!r}")
    key_text = match.group(1).strip()
    plain: Any = int(key_text) if _INT.fullmatch(key_text) else key_text
    return plain, (match.group(2) or "").strip()


def _block_value(inline: str, block: list[tuple[int, str]]) -> Any:
    if inline in ("|", "|-", "|+", ">", ">-", ">+"):
        parts = [line.strip() for _, line in block]
        return ("\n" if inline.startswith("|") else " ").join(parts)
    if inline:
        if inline.startswith(("&", "*", "!")):
            raise MetadataError("anchors, aliases and tags are not supported")
        if block:  # a long plain scalar folded onto indented lines
            if inline[0] in "[{'\"":
                raise MetadataError("a quoted or flow value spread over several lines")
            return " ".join([_strip_comment(inline), *(line.strip() for _, line in block)])
        return _value(inline)
    if not block:
        return None
    indent = len(block[0][1]) - len(block[0][1].lstrip())
    if any(len(line) - len(line.lstrip()) != indent for _, line in block):
        raise MetadataError("nested blocks deeper than one level are not supported")
    items = [line.strip() for _, line in block]
    if all(item == "-" or item.startswith("- ") for item in items):
        return [_value(item[1:].strip()) for item in items]
    mapping: dict[Any, Any] = {}
    for number, item in ((n, line.strip()) for n, line in block):
        key, value = _split_key(item, number)
        if value == "":
            raise MetadataError(f"line {number}: nested blocks deeper than one level are not supported")
        mapping[key] = _value(value)
    return mapping


def _value(text: str) -> Any:
    """An inline value: a scalar or a flow list of scalars."""
    text = text.strip()
    if text.startswith("["):
        return _flow_list(text)
    if text.startswith("{"):
        raise MetadataError("flow mappings ({...}) are not supported")
    return _scalar(text)


def _flow_list(text: str) -> list[Any]:
    body = _strip_comment(text)
    if not body.endswith("]"):
        raise MetadataError(f"unterminated flow list {text[:40]!r}")
    items: list[Any] = []
    current, pos, inner = "", 0, body[1:-1]
    while pos < len(inner):
        char = inner[pos]
        if char in "'\"":
            end = _closing_quote(inner, pos)
            if end < 0:
                raise MetadataError(f"unterminated quote in {text[:40]!r}")
            current += inner[pos : end + 1]
            pos = end + 1
            continue
        if char in "[]{}":
            raise MetadataError("nested flow collections are not supported")
        if char == ",":
            items.append(_scalar(current))
            current = ""
        else:
            current += char
        pos += 1
    if current.strip():
        items.append(_scalar(current))
    return items


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.startswith("'"):
        end = _closing_quote(text, 0)
        if end < 0:
            raise MetadataError(f"unterminated quote in {text[:40]!r}")
        return text[1:end].replace("''", "'")
    if text.startswith('"'):
        end = _closing_quote(text, 0)
        if end < 0:
            raise MetadataError(f"unterminated quote in {text[:40]!r}")
        try:
            return str(json.loads(text[: end + 1]))  # YAML double-quoted escapes are JSON's, mostly
        except ValueError as exc:
            raise MetadataError(f"unsupported escape in {text[:40]!r}") from exc
    text = _strip_comment(text)
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if text.lower() in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text.lower()]
    return text


def _closing_quote(text: str, start: int) -> int:
    quote, pos = text[start], start + 1
    while pos < len(text):
        if text[pos] == quote:
            if quote == "'" and text[pos + 1 : pos + 2] == "'":
                pos += 2  # '' is an escaped quote inside a single-quoted scalar
                continue
            return pos
        if quote == '"' and text[pos] == "\\":
            pos += 2
            continue
        pos += 1
    return -1


def _strip_comment(text: str) -> str:
    """A plain scalar ends where `` #`` starts a comment."""
    index = text.find(" #")
    return (text[:index] if index >= 0 else text).strip()


# --- writing ---------------------------------------------------------------------------------


def _is_safe_key(key: str) -> bool:
    return bool(_SAFE_PLAIN.fullmatch(key)) and _scalar(key) == key


def _inline_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar_text(v) for v in value) + "]"
    return _scalar_text(value)


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):
            return ".nan" if value != value else ("-.inf" if value < 0 else ".inf")
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        # PyYAML reads "1e-05" as a string: a YAML 1.1 float needs a dot in the mantissa.
        return f"{mantissa}.0e{exponent}" if exponent and "." not in mantissa else text
    if isinstance(value, (dict, list, tuple)):
        value = repr(value)  # deeper structures are kept as one Python-literal string
    text = str(value)
    if _SAFE_PLAIN.fullmatch(text) and _scalar(text) == text and ": " not in text and " #" not in text:
        return text
    if text.isprintable():
        return "'" + text.replace("'", "''") + "'"
    return json.dumps(text)

"""The JSON sidecar beside a HEF: what a HEF does not carry (class names, image size, source).

A HEF holds the compiled network and nothing of the model's metadata, so ``edgecv export --to
hailo`` writes ``<name>.hef.json`` with the source ONNX's metadata (names, imgsz, task) and the
HEF's SHA-256. On load the sidecar is optional (a HEF from Hailo's model zoo has none: 80 classes
then take COCO's names), but when present it must describe this HEF: one replaced since the export
would put wrong names on every box.

The sidecar is untrusted input: bounded in size, every field type-checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from edgecv.backend import ModelError, atomic_target, sha256_of

FORMAT = "edgecv-hailo-hef"
FORMAT_VERSION = 1
MAX_SIDECAR_BYTES = 1 << 20
"""A sidecar is a few kB (the class names dominate); anything larger is not one of ours."""


def sidecar_path(hef: Path) -> Path:
    return hef.with_name(hef.name + ".json")


def write_sidecar(hef: Path, metadata: Mapping[str, str]) -> Path:
    """Write ``hef``'s sidecar (atomically) with ``metadata`` (string keys and values)."""
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hef_sha256": sha256_of(hef),
        "metadata": {str(key): str(value) for key, value in metadata.items()},
    }
    target = sidecar_path(hef)
    with atomic_target(target) as partial:
        partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def read_sidecar(hef: Path) -> dict[str, str]:
    """The metadata of ``hef``'s sidecar; ``{}`` when there is none.

    A sidecar that is unreadable, not ours, too large, or written for other HEF bytes is a
    ``ModelError`` naming it (delete it, or export again).
    """
    path = sidecar_path(hef)
    hint = f"Delete {path.name} (the HEF then runs without its metadata) or export the model again."
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ModelError(f"Cannot read {path.name}: {exc.strerror or exc}", hint) from exc
    if len(data) > MAX_SIDECAR_BYTES:
        raise ModelError(
            f"{path.name} is larger than {MAX_SIDECAR_BYTES >> 20} MiB: not an edgecv sidecar", hint
        )
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path.name} is not valid JSON ({exc})", hint) from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelError(f"{path.name} is not an edgecv HEF sidecar", hint)
    if record.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{path.name} has format version {record.get('format_version')!r}; this edgecv-hailo reads "
            f"version {FORMAT_VERSION}",
            "Upgrade edgecv-hailo, or export the model again with this version.",
        )
    metadata = record.get("metadata")
    if not isinstance(metadata, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()
    ):
        raise ModelError(f"{path.name}: 'metadata' must map strings to strings", hint)
    if record.get("hef_sha256") != sha256_of(hef):
        raise ModelError(
            f"{path.name} was written for another HEF than {hef.name} (its SHA-256 differs)", hint
        )
    return dict(metadata)

"""The JSON sidecar beside every engine: what it was built from, with what, and for which machine.

A TensorRT engine runs only with the TensorRT version and on the GPU it was built for; loaded
elsewhere it fails to deserialize, or worse, deserializes and computes garbage. So edgecv writes
``<engine>.json`` with the engine and refuses (``check_engine``) an engine whose sidecar is missing,
unreadable, built for another TensorRT version, GPU or compute capability, or that no longer matches
the engine's bytes, with one line saying where it was built and the command that rebuilds it.

The sidecar is untrusted input when read: bounded in size, every field type-checked.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs

from edgecv.backend import ModelError, atomic_target, sha256_of

FORMAT = "edgecv-tensorrt-engine"
FORMAT_VERSION = 1
MAX_SIDECAR_BYTES = 4 << 20
"""A sidecar is a few kB (the model's metadata dominates); anything larger is not one of ours."""


class Machine(Protocol):
    """Where an engine is built or loaded (``runtime.MachineInfo``)."""

    @property
    def trt_version(self) -> str: ...

    @property
    def gpu_name(self) -> str: ...

    @property
    def compute_capability(self) -> str: ...


@attrs.frozen
class Sidecar:
    """Everything an engine depends on. The engine cache is keyed by all of it but ``engine_sha256``
    and ``build_seconds``, which are results of the build, not inputs."""

    source: str
    """File name of the ONNX the engine was built from."""
    model_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_name: str
    input_shape: tuple[int, ...]
    """The shape the engine is optimized for (``opt`` of the profile when built with ``--dynamic``)."""
    build_options: Mapping[str, Any]
    """``workspace`` (bytes or null), ``profile`` (null or ``min``/``opt``/``max``), ``onnx``
    (``as given``, ``edgecv-onnx fp16`` or ``edgecv-onnx int8``), ``calibration`` (null or what
    calibrated an INT8 export): JSON values only."""
    edgecv_version: str
    plugin_version: str
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    """The ONNX's ``metadata_props`` (class names, imgsz, stride, task...), for the session's spec."""
    engine_sha256: str = ""
    build_seconds: float | None = None

    def key(self) -> str:
        """sha256 of every input of the build: a change of any of them is another engine."""
        fields = self.to_json()
        del fields["engine_sha256"], fields["build_seconds"]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **attrs.asdict(self, recurse=False),
            "input_shape": list(self.input_shape),
            "build_options": dict(self.build_options),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json(cls, data: Any) -> Sidecar:
        """Check every field of untrusted JSON; ``ValueError`` names the first wrong one."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} sidecar")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"sidecar format version {data.get('format_version')!r}, not {FORMAT_VERSION}")
        strings = [f.name for f in attrs.fields(cls) if f.type in ("str", str)]
        for name in strings:
            if not isinstance(data.get(name), str):
                raise ValueError(f"{name} is not a string")
        shape = data.get("input_shape")
        if not (isinstance(shape, list) and all(type(d) is int for d in shape)):
            raise ValueError("input_shape is not a list of integers")
        options, metadata = data.get("build_options"), data.get("metadata")
        if not isinstance(options, dict):
            raise ValueError("build_options is not an object")
        if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
            raise ValueError("metadata is not an object of strings")
        seconds = data.get("build_seconds")
        if seconds is not None and not isinstance(seconds, (int, float)):
            raise ValueError("build_seconds is not a number")
        return cls(
            **{name: data[name] for name in strings},
            input_shape=tuple(shape),
            build_options=options,
            metadata=metadata,
            build_seconds=None if seconds is None else float(seconds),
        )

    def rebuild_command(self, engine: Path) -> str:
        """The ``edgecv export`` line that builds this engine again, here."""
        words = [
            "edgecv",
            "export",
            "--model",
            self.source,
            "--to",
            "tensorrt",
            "--precision",
            self.precision,
        ]
        profile = self.build_options.get("profile")
        if profile:
            words.append("--dynamic")
        workspace = self.build_options.get("workspace")
        if isinstance(workspace, int):
            words += ["--workspace", f"{workspace / (1 << 30):g}"]
        calibration = self.build_options.get("calibration")
        if isinstance(calibration, dict) and isinstance(calibration.get("folder"), str):
            words += ["--calib", calibration["folder"]]
        words += ["-o", str(engine)]
        return shlex.join(words)


def sidecar_path(engine: Path) -> Path:
    """``yolo11n.engine`` -> ``yolo11n.engine.json``."""
    return engine.with_name(engine.name + ".json")


def read_sidecar(engine: Path) -> Sidecar:
    """The sidecar of ``engine``, or a one-line ``ModelError`` when it is missing or not one of ours."""
    path = sidecar_path(engine)
    hint = (
        f"Rebuild the engine on this machine with edgecv export --to tensorrt (-o {engine}), "
        "or load the .onnx with --backend tensorrt"
    )
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        raise ModelError(
            f"{engine.name} has no sidecar {path.name}: edgecv cannot tell which TensorRT version and GPU "
            "it was built for, and refuses to load it",
            hint,
        ) from None
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc.strerror or exc}", hint) from exc
    try:
        if len(raw) > MAX_SIDECAR_BYTES:
            raise ValueError(f"larger than {MAX_SIDECAR_BYTES} bytes")
        return Sidecar.from_json(json.loads(raw))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise ModelError(f"{path.name} is not a readable edgecv TensorRT sidecar ({exc})", hint) from exc


def write_sidecar(engine: Path, sidecar: Sidecar) -> None:
    with atomic_target(sidecar_path(engine)) as partial:
        partial.write_text(json.dumps(sidecar.to_json(), indent=1, sort_keys=True) + "\n")


def write_engine(engine: Path, data: bytes, sidecar: Sidecar) -> Sidecar:
    """Write the engine, then its sidecar (with the engine's sha256), each atomically.

    The old sidecar goes first: a crash in between leaves an engine without a sidecar, which is
    refused (and rebuilt by the cache), never an engine paired with another engine's sidecar.
    """
    sidecar = attrs.evolve(sidecar, engine_sha256=hashlib.sha256(data).hexdigest())
    sidecar_path(engine).unlink(missing_ok=True)
    with atomic_target(engine) as partial:
        partial.write_bytes(data)
    write_sidecar(engine, sidecar)
    return sidecar


def foreign(sidecar: Sidecar, machine: Machine) -> str | None:
    """What differs between where the engine was built and ``machine``; ``None`` when nothing does."""
    built = (sidecar.trt_version, sidecar.gpu_name, sidecar.compute_capability)
    here = (machine.trt_version, machine.gpu_name, machine.compute_capability)
    if built == here:
        return None
    return (
        f"built with TensorRT {built[0]} for {built[1]} (compute capability {built[2]}); "
        f"this machine has TensorRT {here[0]} on {here[1]} (compute capability {here[2]})"
    )


def check_engine(engine: Path, machine: Machine) -> Sidecar:
    """The engine's sidecar when the engine was built here, for this TensorRT, from these bytes;
    else a one-line ``ModelError`` saying where it was built and how to rebuild it."""
    sidecar = read_sidecar(engine)
    difference = foreign(sidecar, machine)
    rebuild = f"Rebuild it here: {sidecar.rebuild_command(engine)}"
    if difference is not None:
        raise ModelError(f"{engine.name} was {difference}", rebuild)
    try:
        digest = sha256_of(engine)
    except OSError as exc:
        raise ModelError(f"Cannot read {engine}: {exc.strerror or exc}", rebuild) from exc
    if digest != sidecar.engine_sha256:
        raise ModelError(
            f"{engine.name} is not the engine its sidecar describes "
            "(changed or truncated since it was built)",
            rebuild,
        )
    return sidecar

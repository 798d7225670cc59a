"""Model names -> files: local mirrors first, then a verified download into the cache.

Resolution of ``edgecv.load("yolov8n")``:
1. each folder in ``EDGECV_MODEL_DIR`` (``os.pathsep``-separated), then ``<assets>/models``;
2. the cache (``EDGECV_CACHE_DIR``, default ``~/.cache/edgecv``) under ``models/``;
3. download from ``EDGECV_MODEL_MIRROR_URL`` + file name, then from the entry's own URLs, into
   the cache, keeping the file only when its sha256 matches.
``EDGECV_REGISTRY`` may name a JSON file ``{name: {"file", "sha256", "urls"}}`` that adds or
replaces entries (a fleet's own models).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import attrs

from edgecv.errors import ModelError, RegistryError
from edgecv.files import atomic_target
from edgecv.spec import file_sha256, to_tuple

DEFAULT_MODEL = "yolov8n"


@attrs.frozen
class RegistryEntry:
    file: str
    sha256: str
    urls: tuple[str, ...] = attrs.field(default=(), converter=to_tuple)
    description: str = ""


_GITHUB = "https://github.com/{repo}/raw/{commit}/{path}"

BUILTIN: dict[str, RegistryEntry] = {
    "yolov8n": RegistryEntry(
        "yolov8n_fp32_dequant.onnx",
        "9580ae60871dccbfe2dd0ca1b98bc49f5a6c45282505001af76d16e50bfdd2d7",
        description="YOLOv8n COCO, 640, float32 (from mirrors only: no public URL)",
    ),
    "yolov8n-int8": RegistryEntry(
        "yolov8n_int8.onnx",
        "83de8f0d2cd521e00ae2b138c340a03dece35b060b3898509bdc69afff417312",
        (
            _GITHUB.format(
                repo="Lamri-Meriem/edge-object-detection",
                commit="6f7f95f70dd52a7805a76a4a1d568af35d34608b",
                path="yolov8n_int8.onnx",
            ),
        ),
        "YOLOv8n COCO, 640, dynamic int8 (ConvInteger)",
    ),
    "yolo11n-320": RegistryEntry(
        "yolo11n_320_fp32_dequant.onnx",
        "4a5dbc0718d87229961cd8758c6a066494db13b7acad0657d3e7e26cd30f8379",
        description="YOLO11n COCO, 320, float32 (from mirrors only: no public URL)",
    ),
    "yolo11n-320-int8": RegistryEntry(
        "yolo11n_320_int8.onnx",
        "5ea9b19c6c4d89041175fd2d4f9d2e1581d16f37b817021d547278fc5e2f2b58",
        (
            _GITHUB.format(
                repo="achmadnr21/mwc-rpi5",
                commit="aa67e80a9cb637de3d271be231905c30253dbce1",
                path="yolo11n_int8.onnx",
            ),
        ),
        "YOLO11n COCO, 320, dynamic int8 (ConvInteger)",
    ),
    "yolox-nano": RegistryEntry(
        "yolox_nano.onnx",
        "d39bee73564e338080378b0ad567fbb40e818b55bbfaf971de82a0267ed16b8a",
        (
            _GITHUB.format(
                repo="hamacom2004jp/iinfer",
                commit="c7f9a3c5216c6f8b3e8b35886f863dffa2dc0bf9",
                path="models/yolox_nano.onnx",
            ),
        ),
        "YOLOX-Nano COCO, 416, float32",
    ),
}


def assets_dir() -> Path | None:
    """``EDGECV_ASSETS``, else ``../shared/assets`` from the working directory when present."""
    configured = os.environ.get("EDGECV_ASSETS")
    if configured:
        return Path(configured)
    for candidate in (Path.cwd().parent / "shared" / "assets", Path.cwd() / "shared" / "assets"):
        if candidate.is_dir():
            return candidate
    return None


def cache_dir() -> Path:
    configured = os.environ.get("EDGECV_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgecv"


def entries() -> dict[str, RegistryEntry]:
    merged = dict(BUILTIN)
    extra = os.environ.get("EDGECV_REGISTRY")
    if extra:
        merged.update(_read_registry_file(Path(extra)))
    return merged


def _read_registry_file(path: Path) -> dict[str, RegistryEntry]:
    try:
        data = json.loads(path.read_text())
        return {name: RegistryEntry(**fields) for name, fields in data.items()}
    except (OSError, ValueError, TypeError) as exc:
        raise RegistryError(
            f"Cannot read the model registry {path} ({exc})",
            'Fix EDGECV_REGISTRY: a JSON object {name: {"file": ..., "sha256": ..., "urls": [...]}}.',
        ) from exc


def mirror_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("EDGECV_MODEL_DIR", "").split(os.pathsep) if p]
    assets = assets_dir()
    if assets is not None:
        dirs.append(assets / "models")
    return dirs


def resolve(model: str | os.PathLike[str]) -> Path:
    """A path to an existing model file or folder for a path or a registry name."""
    path = Path(model)
    if path.exists():
        return path
    known = entries()
    name = str(model)
    if name in known:
        return fetch(name, known[name])
    if path.suffix or os.sep in name or (os.altsep and os.altsep in name):
        raise ModelError(f"Model file {path} does not exist", "Check the path, or pass a registry name.")
    raise RegistryError(
        f"Unknown model {name!r}: not a file and not a registry name",
        f"Pass a model path or one of: {', '.join(sorted(known))}.",
    )


def fetch(name: str, entry: RegistryEntry) -> Path:
    for folder in mirror_dirs():
        candidate = folder / entry.file
        if candidate.is_file() and file_sha256(candidate) == entry.sha256:
            return candidate
    cached = cache_dir() / "models" / entry.file
    if cached.is_file() and file_sha256(cached) == entry.sha256:
        return cached
    urls = list(entry.urls)
    mirror_url = os.environ.get("EDGECV_MODEL_MIRROR_URL")
    if mirror_url:
        urls.insert(0, mirror_url.rstrip("/") + "/" + entry.file)
    if not urls:
        raise RegistryError(
            f"Model {name!r} ({entry.file}) is not in any local mirror and has no download URL",
            "Put the file in a folder named by EDGECV_MODEL_DIR or set EDGECV_MODEL_MIRROR_URL.",
        )
    failures = []
    for url in urls:
        try:
            return download(url, cached, entry.sha256)
        except RegistryError as exc:
            failures.append(str(exc))
    raise RegistryError(
        f"Could not download model {name!r}: {' | '.join(failures)}",
        "Check the network, or put the file in a folder named by EDGECV_MODEL_DIR.",
    )


def download(url: str, target: Path, sha256: str, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``target`` atomically; keep it only when its sha256 matches."""
    digest = hashlib.sha256()
    try:
        with atomic_target(target) as partial:
            try:
                with open(partial, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                    while block := response.read(1 << 20):
                        digest.update(block)
                        out.write(block)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                raise RegistryError(f"{url}: {exc}") from exc
            if digest.hexdigest() != sha256:
                raise RegistryError(
                    f"{url} has sha256 {digest.hexdigest()[:12]}…, expected {sha256[:12]}…",
                    "The mirror is corrupt.",
                )
    except OSError as exc:  # creating the cache folder, the temporary file, or the final rename
        raise RegistryError(
            f"Cannot write to the model cache {target.parent}: {exc}",
            "Set EDGECV_CACHE_DIR to a writable folder.",
        ) from exc
    return target

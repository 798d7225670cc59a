"""Model names -> files: local mirrors first, then a verified download into the cache.

Resolution of ``edgecv.load("yolov8n")``:
1. the models shipped inside edgecv-core (``edgecv/models``: YOLOX-Nano, the default, so that a
   fresh install predicts offline), then each folder in ``EDGECV_MODEL_DIR``
   (``os.pathsep``-separated), then ``<assets>/models``;
2. the cache (``EDGECV_CACHE_DIR``, default ``~/.cache/edgecv``) under ``models/``;
3. download from ``EDGECV_MODEL_MIRROR_URL`` + file name, then from the entry's own URLs, into
   the cache, keeping the file only when its sha256 matches.
Every local copy counts only when its sha256 matches the entry's. ``EDGECV_REGISTRY`` may name a
JSON file ``{name: {"file", "sha256", "urls", "size", "description", "license"}}`` that adds or
replaces entries (a fleet's own models).

A registry file may come from a fleet server, so it is untrusted: each entry is checked field by
field, and its ``file`` must name a file inside the cache. Downloads are bounded: at most the
entry's ``size`` (else ``MAX_DOWNLOAD_BYTES``), within ``EDGECV_DOWNLOAD_DEADLINE_S`` seconds in
all (else ``DOWNLOAD_DEADLINE_S``), from ``http(s)://`` only (``file://`` when
``EDGECV_ALLOW_FILE_URLS=1``). ``user:password@`` in a URL is sent as HTTP Basic authentication
(not to a redirect's target) and never shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import importlib.resources
import json
import math
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Generator
from pathlib import Path, PurePosixPath, PureWindowsPath

import attrs

from edgecv.deadline import Deadline, HTTPHandler, HTTPSHandler
from edgecv.errors import ConfigError, ModelError, RegistryError, one_line
from edgecv.files import atomic_target
from edgecv.spec import file_sha256
from edgecv.urls import redact, scrub, split_credentials

DEFAULT_MODEL = "yolox-nano"
"""Shipped inside edgecv-core (Apache-2.0), so it needs no assets, mirror or network."""

MAX_DOWNLOAD_BYTES = 2 << 30
"""The most a download may bring when its registry entry gives no ``size`` (2 GiB)."""
DOWNLOAD_DEADLINE_S = 900.0
"""Wall-clock limit on one download (connect, headers, body); ``EDGECV_DOWNLOAD_DEADLINE_S`` overrides."""
READ_TIMEOUT_S = 30.0
"""Longest wait for the network in one step (connect, one read), within the deadline."""
DEADLINE_VARIABLE = "EDGECV_DOWNLOAD_DEADLINE_S"
FILE_URLS_VARIABLE = "EDGECV_ALLOW_FILE_URLS"


def _file_name(entry: RegistryEntry, attribute: attrs.Attribute[str], value: object) -> None:
    """``file`` is joined onto the cache and mirror folders: it must stay inside them."""
    if not isinstance(value, str):
        raise TypeError(f"field 'file' must be a string, not {_json_kind(value)}")
    parts = re.split(r"[/\\]", value)
    if (
        "\x00" in value
        or PurePosixPath(value).is_absolute()
        or PureWindowsPath(value).drive
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(
            f"field 'file' must name a file inside the cache, not {value!r} "
            "(a name or a relative path: no absolute path, no '..', '.' or empty part, no NUL)"
        )


def _sha256(entry: RegistryEntry, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"field 'sha256' must be 64 hexadecimal digits, not {_short(value)}")


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _urls(value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"field 'urls' must be a list of strings, not {_json_kind(value)}")
    if not all(isinstance(url, str) for url in value):
        raise TypeError("field 'urls' must be a list of strings")
    return tuple(value)


def _size(entry: RegistryEntry, attribute: attrs.Attribute[int | None], value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ValueError(f"field 'size' must be a positive number of bytes, not {_short(value)}")


def _text(entry: RegistryEntry, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"field '{attribute.name}' must be a string, not {_json_kind(value)}")


@attrs.frozen
class RegistryEntry:
    """A model the registry can fetch; every field is checked, ``file`` stays inside the cache."""

    file: str = attrs.field(validator=_file_name)
    sha256: str = attrs.field(converter=_lower, validator=_sha256)
    urls: tuple[str, ...] = attrs.field(default=(), converter=_urls)
    description: str = attrs.field(default="", validator=_text)
    size: int | None = attrs.field(default=None, validator=_size, kw_only=True)
    """The file's size in bytes: a download that brings more is cut off."""
    license: str = attrs.field(default="", validator=_text, kw_only=True)
    """The model's licence as its owner states it (an SPDX name such as ``Apache-2.0``); shown by
    ``edgecv models``, never acted on."""


_GITHUB = "https://github.com/{repo}/raw/{commit}/{path}"

BUILTIN: dict[str, RegistryEntry] = {
    "yolov8n": RegistryEntry(
        "yolov8n_fp32_dequant.onnx",
        "9580ae60871dccbfe2dd0ca1b98bc49f5a6c45282505001af76d16e50bfdd2d7",
        description="YOLOv8n COCO, 640, float32 (from mirrors only: no public URL)",
        size=12_822_293,
        license="AGPL-3.0",
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
        size=3_504_119,
        license="AGPL-3.0",
    ),
    "yolo11n-320": RegistryEntry(
        "yolo11n_320_fp32_dequant.onnx",
        "4a5dbc0718d87229961cd8758c6a066494db13b7acad0657d3e7e26cd30f8379",
        description="YOLO11n COCO, 320, float32 (from mirrors only: no public URL)",
        size=10_573_504,
        license="AGPL-3.0",
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
        size=2_923_867,
        license="AGPL-3.0",
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
        "YOLOX-Nano COCO, 416, float32 (Megvii; shipped inside edgecv-core, see edgecv/models/NOTICE)",
        size=3_713_911,
        license="Apache-2.0",
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


def sample_image(source: str | os.PathLike[str] | None) -> Path:
    """``source`` as a path, or when it is ``None`` the sample image ``<assets>/images/bus.jpg``
    (what ``edgecv bench`` and ``edgecv compress report`` time on); ``ImageError`` without one."""
    from edgecv.errors import ImageError

    if source is not None:
        return Path(source)
    assets = assets_dir()
    default = assets / "images" / "bus.jpg" if assets is not None else None
    if default is None or not default.is_file():
        raise ImageError(
            "No --source image given and no default image (<assets>/images/bus.jpg) found",
            "Pass --source IMAGE, or set EDGECV_ASSETS to the assets folder.",
        )
    return default


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


_FIELDS = {field.name for field in attrs.fields(RegistryEntry)}
_REQUIRED = {"file", "sha256"}
_SCHEMA = (
    'EDGECV_REGISTRY names a JSON object {name: {"file": "model.onnx", "sha256": "<64 hex digits>", '
    '"urls": ["https://..."], "size": <bytes>, "description": "...", "license": "..."}}; '
    "only file and sha256 are required."
)


def _read_registry_file(path: Path) -> dict[str, RegistryEntry]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(
            f"Cannot read the model registry {path} (EDGECV_REGISTRY): {one_line(exc)}", _SCHEMA
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"The model registry {path} (EDGECV_REGISTRY) holds a JSON {_json_kind(data)}: "
            "it must be an object",
            _SCHEMA,
        )
    return {name: _registry_entry(path, name, fields) for name, fields in data.items()}


def _registry_entry(path: Path, name: str, fields: object) -> RegistryEntry:
    def problem(text: str) -> ConfigError:
        return ConfigError(
            f"The model registry {path} (EDGECV_REGISTRY): entry {name!r}: {text}",
            "Fix that entry: file and sha256 are required; urls, size, description and license are optional.",
        )

    if not isinstance(fields, dict):
        raise problem(f"must be a JSON object, not a {_json_kind(fields)}")
    unknown, missing = sorted(set(fields) - _FIELDS), sorted(_REQUIRED - set(fields))
    if unknown:
        raise problem(f"has unknown field(s) {', '.join(map(repr, unknown))}")
    if missing:
        raise problem(f"lacks field(s) {', '.join(map(repr, missing))}")
    try:
        return RegistryEntry(**fields)
    except (TypeError, ValueError) as exc:
        raise problem(str(exc)) from exc


def _json_kind(value: object) -> str:
    kinds = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number" if isinstance(value, (int, float)) else type(value).__name__)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def embedded_dir() -> Path | None:
    """The models shipped inside edgecv-core (``edgecv/models``), when installed as plain files."""
    folder = importlib.resources.files("edgecv").joinpath("models")
    return folder if isinstance(folder, Path) and folder.is_dir() else None


def mirror_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("EDGECV_MODEL_DIR", "").split(os.pathsep) if p]
    assets = assets_dir()
    if assets is not None:
        dirs.append(assets / "models")
    return dirs


@attrs.frozen
class Source:
    """Where a registry name resolves on this machine, found without downloading anything."""

    kind: str
    """``embedded`` (inside edgecv-core), ``mirror`` (a folder), ``cache``, ``download`` or ``none``."""
    location: str = ""
    """The local file, or the first URL a download tries (credentials redacted); empty for ``none``."""


def source(name: str, entry: RegistryEntry) -> Source:
    """Where ``resolve(name)`` would take ``entry`` from; local copies are checked (sha256)."""
    found = _local_copy(name, entry)
    if found is not None:
        return Source(found[0], str(found[1]))
    urls = download_urls(entry)
    return Source("download", redact(urls[0])) if urls else Source("none")


def _local_copy(name: str, entry: RegistryEntry) -> tuple[str, Path] | None:
    """(kind, path) of a copy of ``entry`` with the right sha256 on this machine, if there is one."""
    embedded = embedded_dir()
    folders = [("embedded", embedded)] if embedded is not None else []
    folders += [("mirror", folder) for folder in mirror_dirs()]
    for kind, folder in folders:
        candidate = folder / entry.file
        if candidate.is_file() and file_sha256(candidate) == entry.sha256:
            return kind, candidate
    cached = _cache_path(name, entry)
    if cached.is_file() and file_sha256(cached) == entry.sha256:
        return "cache", cached
    return None


def download_urls(entry: RegistryEntry) -> list[str]:
    """The URLs a download of ``entry`` tries, in order: ``EDGECV_MODEL_MIRROR_URL``, then its own."""
    urls = list(entry.urls)
    mirror_url = os.environ.get("EDGECV_MODEL_MIRROR_URL")
    if mirror_url:
        urls.insert(0, mirror_url.rstrip("/") + "/" + urllib.parse.quote(entry.file))
    return urls


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
    found = _local_copy(name, entry)
    if found is not None:
        return found[1]
    cached = _cache_path(name, entry)
    urls = download_urls(entry)
    if not urls:
        raise RegistryError(
            f"Model {name!r} ({entry.file}) is not in any local mirror and has no download URL",
            "Put the file in a folder named by EDGECV_MODEL_DIR or set EDGECV_MODEL_MIRROR_URL "
            f"(`edgecv models` shows where each name resolves; {DEFAULT_MODEL!r}, the default, "
            "ships with edgecv).",
        )
    deadline_s = download_deadline_s()
    failures = []
    for url in urls:
        try:
            return download(url, cached, entry.sha256, size=entry.size, deadline_s=deadline_s)
        except RegistryError as exc:
            failures.append(str(exc))
    raise RegistryError(
        f"Could not download model {name!r}: {' | '.join(failures)}",
        "Check the network, or put the file in a folder named by EDGECV_MODEL_DIR.",
    )


def _cache_path(name: str, entry: RegistryEntry) -> Path:
    """Where ``entry`` is cached; ``file`` is checked already, this catches a link in the cache."""
    models = cache_dir() / "models"
    target = models / entry.file
    try:
        inside = target.resolve().is_relative_to(models.resolve())
    except (OSError, RuntimeError):  # a link loop
        inside = False
    if not inside:
        raise ConfigError(
            f"Model {name!r}: {target} leads outside the model cache {models} through a symbolic link",
            "Remove the link, or set EDGECV_CACHE_DIR to another folder.",
        )
    return target


def download_deadline_s() -> float:
    """``EDGECV_DOWNLOAD_DEADLINE_S``, else ``DOWNLOAD_DEADLINE_S``."""
    configured = os.environ.get(DEADLINE_VARIABLE, "").strip()
    if not configured:
        return DOWNLOAD_DEADLINE_S
    try:
        seconds = float(configured)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ConfigError(
            f"{DEADLINE_VARIABLE}={configured!r} is not a positive number of seconds",
            f"Unset it, or give the seconds one model download may take (default {DOWNLOAD_DEADLINE_S:g}).",
        )
    return min(seconds, 1e6)  # threading and socket timeouts overflow on absurd values


def download(
    url: str, target: Path, sha256: str, *, size: int | None = None, deadline_s: float | None = None
) -> Path:
    """Download ``url`` to ``target`` atomically; keep it only when its sha256 matches.

    At most ``size`` bytes and never more than ``MAX_DOWNLOAD_BYTES``, all within ``deadline_s``
    seconds (else ``download_deadline_s()``). Whatever ends it (an error, Ctrl-C), no partial file
    stays behind.
    """
    shown = redact(url)
    request = _request(url, shown)  # before the cache is touched: a refused URL writes nothing
    # An untrusted registry's size does not lift the cap: the cap is what keeps the disk from filling.
    limit, why = (
        (size, "the registry entry's size")
        if size is not None and size <= MAX_DOWNLOAD_BYTES
        else (MAX_DOWNLOAD_BYTES, "edgecv.registry.MAX_DOWNLOAD_BYTES")
    )
    seconds = download_deadline_s() if deadline_s is None else deadline_s
    digest = hashlib.sha256()
    try:
        with atomic_target(target) as partial:
            with (
                open(partial, "wb") as out,
                contextlib.closing(_receive(request, shown, limit, why, seconds)) as blocks,
            ):
                for block in blocks:
                    digest.update(block)
                    out.write(block)
            if digest.hexdigest() != sha256:
                raise RegistryError(
                    f"{shown} has sha256 {digest.hexdigest()[:12]}…, expected {sha256[:12]}…",
                    "The mirror is corrupt.",
                )
    except OSError as exc:  # creating the cache folder, writing the file, or the final rename
        raise RegistryError(
            f"Cannot write to the model cache {target.parent}: {exc}",
            "Set EDGECV_CACHE_DIR to a writable folder.",
        ) from exc
    return target


_BLOCK = 1 << 20
_NOT_IN_A_URL = re.compile(r"[\x00-\x20\x7f]")


def _request(url: str, shown: str) -> urllib.request.Request:
    """The request for ``url``: http(s) only (``file://`` when allowed), credentials as Basic auth."""
    scheme = url.partition(":")[0].lower()
    if scheme == "file":
        if os.environ.get(FILE_URLS_VARIABLE) != "1":
            raise RegistryError(
                f"{shown}: file:// URLs are refused",
                f"Set {FILE_URLS_VARIABLE}=1 to let the model registry read local files.",
            )
        return urllib.request.Request(url)
    if scheme not in ("http", "https") or "://" not in url:
        raise RegistryError(f"{shown}: only http:// and https:// downloads are supported")
    if _NOT_IN_A_URL.search(url):
        raise RegistryError(
            f"{shown}: a URL cannot hold spaces or control characters", "Percent-encode them."
        )
    try:
        bare, authorization = split_credentials(url)
    except ValueError as exc:  # its message quotes no part of the URL
        raise RegistryError(f"{shown}: {exc}") from None
    request = urllib.request.Request(bare)
    if authorization is not None:
        request.add_unredirected_header("Authorization", authorization)  # not to a redirect's target
    return request


def _receive(
    request: urllib.request.Request, shown: str, limit: int, why: str, seconds: float
) -> Generator[bytes, None, None]:
    """The body of ``request`` block by block; at most ``limit`` bytes, within ``seconds``."""
    deadline = Deadline(seconds)
    received = 0
    try:
        with (
            deadline,
            _opener(deadline, request).open(request, timeout=min(READ_TIMEOUT_S, seconds)) as response,
        ):
            announced = response.headers.get("Content-Length", "").strip()
            if announced.isdigit() and int(announced) > limit:
                raise RegistryError(f"{shown} announces {announced} bytes, more than {limit} ({why})")
            while block := response.read1(_BLOCK):
                received += len(block)
                if received > limit:
                    raise RegistryError(f"{shown} sends more than {limit} bytes ({why})")
                if deadline.passed:
                    break
                yield block
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()
        if not deadline.passed:
            raise RegistryError(f"{shown}: {_reason(exc, request.full_url)}") from exc
    if deadline.passed:  # the shut-down sockets ended the transfer early, or a read came too late
        raise RegistryError(
            f"{shown}: the download did not finish within {seconds:g} s ({received} bytes received)",
            f"Check the network, or allow more time with {DEADLINE_VARIABLE}=SECONDS.",
        )


def _reason(exc: BaseException, url: str) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"no answer within {READ_TIMEOUT_S:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]  # "connection refused", "[SSL: ...] ..."
    text = one_line(str(reason))
    return scrub(f"{type(reason).__name__}: {text}" if text else type(reason).__name__, url)


def _opener(deadline: Deadline, request: urllib.request.Request) -> urllib.request.OpenerDirector:
    """urllib's usual handlers without ftp:// or data:, and file:// only for a request that is one."""
    opener = urllib.request.OpenerDirector()
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        HTTPHandler(deadline),
        HTTPSHandler(deadline),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
    ]
    if request.type == "file":
        handlers.append(urllib.request.FileHandler())
    for handler in handlers:
        opener.add_handler(handler)
    return opener

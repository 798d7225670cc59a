"""Model names -> files: mirrors, cache, verified downloads from a real local HTTP server."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import numpy as np
import pytest

import edgecv
from edgecv import registry
from edgecv.errors import ConfigError, ModelError, RegistryError
from edgecv.testing.cli import assert_one_line_error, run_edgecv

PAYLOAD = b"edgecv registry test payload\n" * 100
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
OTHER_SHA = hashlib.sha256(b"something else").hexdigest()


@attrs.define
class Server:
    url: str
    root: Path
    requests: list[str]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A real HTTP server on 127.0.0.1 serving ``root``; records every requested path."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []
    handler = type("Handler", (_QuietHandler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", root, requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("EDGECV_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def no_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hide shared/assets from the registry: EDGECV_ASSETS names an empty folder."""
    empty = tmp_path / "no-assets"
    empty.mkdir()
    monkeypatch.setenv("EDGECV_ASSETS", str(empty))
    return empty


def write_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: dict) -> None:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(entries))
    monkeypatch.setenv("EDGECV_REGISTRY", str(path))


def register_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, urls: list[str], sha256: str = PAYLOAD_SHA
) -> None:
    """Registry entry ``payload`` -> payload.bin with ``sha256``, downloadable from ``urls``."""
    write_registry(
        tmp_path, monkeypatch, {"payload": {"file": "payload.bin", "sha256": sha256, "urls": urls}}
    )


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing-listens-here.bin"


@pytest.fixture
def raw_tcp_server() -> Iterator[Callable[[bytes], str]]:
    """``start(reply)``: a one-shot TCP service on 127.0.0.1 answering any request with ``reply``."""
    sockets: list[socket.socket] = []

    def start(reply: bytes) -> str:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(10)
        sockets.append(listener)

        def answer() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(reply)

        threading.Thread(target=answer, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for listener in sockets:
        listener.close()


def cache_files(cache: Path) -> list[str]:
    folder = cache / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# --- resolution order ---------------------------------------------------------------------------


def test_existing_path_is_returned_as_is(tmp_path: Path) -> None:
    model = tmp_path / "anything.onnx"
    model.write_bytes(b"x")
    assert registry.resolve(model) == model
    assert registry.resolve(str(model)) == model


def test_builtin_name_resolves_to_the_assets_mirror(models: Path, cache: Path) -> None:
    assert registry.resolve("yolov8n-int8").resolve() == (models / "yolov8n_int8.onnx").resolve()
    assert cache_files(cache) == []


def test_model_dir_mirror_wins_over_assets_and_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server
) -> None:
    first, second = tmp_path / "mirror1", tmp_path / "mirror2"
    for folder in (first, second):
        folder.mkdir()
        (folder / "payload.bin").write_bytes(PAYLOAD)
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "payload.bin").write_bytes(PAYLOAD)
    register_payload(tmp_path, monkeypatch, [f"{server.url}/payload.bin"])
    monkeypatch.setenv("EDGECV_MODEL_DIR", f"{first}:{second}")
    assert registry.resolve("payload") == first / "payload.bin"
    monkeypatch.setenv("EDGECV_MODEL_DIR", f"{second}:{first}")
    assert registry.resolve("payload") == second / "payload.bin"
    assert server.requests == []


def test_mirror_file_with_wrong_sha_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server
) -> None:
    corrupt, good = tmp_path / "corrupt", tmp_path / "good"
    corrupt.mkdir()
    good.mkdir()
    (corrupt / "payload.bin").write_bytes(PAYLOAD[:-1] + b"!")
    (good / "payload.bin").write_bytes(PAYLOAD)
    register_payload(tmp_path, monkeypatch, [])
    monkeypatch.setenv("EDGECV_MODEL_DIR", f"{corrupt}:{good}")
    assert registry.resolve("payload") == good / "payload.bin"


def test_corrupt_mirror_falls_back_to_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path
) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "payload.bin").write_bytes(b"truncated")
    (server.root / "payload.bin").write_bytes(PAYLOAD)
    register_payload(tmp_path, monkeypatch, [f"{server.url}/payload.bin"])
    monkeypatch.setenv("EDGECV_MODEL_DIR", str(corrupt))
    path = registry.resolve("payload")
    assert path == cache / "models" / "payload.bin"
    assert path.read_bytes() == PAYLOAD
    assert (corrupt / "payload.bin").read_bytes() == b"truncated"  # the mirror is never written


def test_verified_cache_is_used_without_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path
) -> None:
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "payload.bin").write_bytes(PAYLOAD)
    register_payload(tmp_path, monkeypatch, [f"{server.url}/payload.bin"])
    assert registry.resolve("payload") == cache / "models" / "payload.bin"
    assert server.requests == []


# --- downloads ----------------------------------------------------------------------------------


def test_download_lands_in_the_cache_with_the_right_sha(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path
) -> None:
    (server.root / "payload.bin").write_bytes(PAYLOAD)
    register_payload(tmp_path, monkeypatch, [f"{server.url}/payload.bin"])
    path = registry.resolve("payload")
    assert path == cache / "models" / "payload.bin"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == PAYLOAD_SHA
    assert cache_files(cache) == ["payload.bin"]
    assert server.requests == ["/payload.bin"]
    # Second resolution: served from the cache.
    assert registry.resolve("payload") == path
    assert server.requests == ["/payload.bin"]


def test_cached_file_with_wrong_sha_is_downloaded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path
) -> None:
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "payload.bin").write_bytes(b"stale")
    (server.root / "payload.bin").write_bytes(PAYLOAD)
    register_payload(tmp_path, monkeypatch, [f"{server.url}/payload.bin"])
    assert registry.resolve("payload").read_bytes() == PAYLOAD
    assert server.requests == ["/payload.bin"]


def test_wrong_sha_download_raises_and_leaves_nothing_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path
) -> None:
    (server.root / "payload.bin").write_bytes(PAYLOAD)
    register_payload(tmp_path, monkeypatch, [f"{server.url}/payload.bin"], sha256=OTHER_SHA)
    with pytest.raises(RegistryError) as caught:
        registry.resolve("payload")
    assert "sha256" in str(caught.value)
    assert server.requests == ["/payload.bin"]
    assert cache_files(cache) == []  # neither the file nor a .part leftover


def test_unreachable_url_raises_registry_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, no_assets: Path
) -> None:
    url = closed_port_url()
    register_payload(tmp_path, monkeypatch, [url])
    with pytest.raises(RegistryError) as caught:
        registry.resolve("payload")
    assert url in str(caught.value)
    assert cache_files(cache) == []


def test_http_404_raises_registry_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path
) -> None:
    register_payload(tmp_path, monkeypatch, [f"{server.url}/missing.bin"])
    with pytest.raises(RegistryError, match="404"):
        registry.resolve("payload")
    assert cache_files(cache) == []


def test_truncated_transfer_raises_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, raw_tcp_server, no_assets: Path
) -> None:
    # The connection drops after 100 of the announced 100000 bytes.
    url = raw_tcp_server(b"HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n" + PAYLOAD[:100])
    register_payload(tmp_path, monkeypatch, [f"{url}/payload.bin"])
    with pytest.raises(RegistryError):
        registry.resolve("payload")
    assert cache_files(cache) == []


def test_non_http_service_at_the_url_is_a_registry_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, raw_tcp_server, no_assets: Path
) -> None:
    # e.g. EDGECV_MODEL_MIRROR_URL pointing at the wrong port: http.client raises BadStatusLine.
    url = raw_tcp_server(b"SSH-2.0-OpenSSH_9.6\r\n")
    register_payload(tmp_path, monkeypatch, [f"{url}/payload.bin"])
    with pytest.raises(RegistryError):
        registry.resolve("payload")
    assert cache_files(cache) == []


def test_non_http_mirror_falls_through_to_the_entry_url(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cache: Path,
    server: Server,
    raw_tcp_server,
    no_assets: Path,
) -> None:
    (server.root / "payload.bin").write_bytes(PAYLOAD)
    register_payload(tmp_path, monkeypatch, [f"{server.url}/payload.bin"])
    monkeypatch.setenv("EDGECV_MODEL_MIRROR_URL", raw_tcp_server(b"SSH-2.0-OpenSSH_9.6\r\n"))
    assert registry.resolve("payload").read_bytes() == PAYLOAD
    assert server.requests == ["/payload.bin"]


def test_unusable_cache_dir_is_a_registry_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Server, no_assets: Path
) -> None:
    # e.g. a read-only home on an edge device; here the cache "folder" is a regular file.
    not_a_folder = tmp_path / "cache-is-a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("EDGECV_CACHE_DIR", str(not_a_folder))
    (server.root / "payload.bin").write_bytes(PAYLOAD)
    register_payload(tmp_path, monkeypatch, [f"{server.url}/payload.bin"])
    with pytest.raises(RegistryError):
        registry.resolve("payload")


def test_failed_url_falls_through_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path
) -> None:
    (server.root / "good").mkdir()
    (server.root / "bad").mkdir()
    (server.root / "good" / "payload.bin").write_bytes(PAYLOAD)
    (server.root / "bad" / "payload.bin").write_bytes(b"corrupt")
    urls = [closed_port_url(), f"{server.url}/bad/payload.bin", f"{server.url}/good/payload.bin"]
    register_payload(tmp_path, monkeypatch, urls)
    assert registry.resolve("payload").read_bytes() == PAYLOAD
    assert server.requests == ["/bad/payload.bin", "/good/payload.bin"]
    assert cache_files(cache) == ["payload.bin"]


def test_mirror_url_is_tried_before_the_entry_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path
) -> None:
    (server.root / "fleet").mkdir()
    (server.root / "fleet" / "payload.bin").write_bytes(PAYLOAD)
    (server.root / "upstream.bin").write_bytes(PAYLOAD)
    register_payload(tmp_path, monkeypatch, [f"{server.url}/upstream.bin"])
    monkeypatch.setenv("EDGECV_MODEL_MIRROR_URL", f"{server.url}/fleet/")
    assert registry.resolve("payload").read_bytes() == PAYLOAD
    assert server.requests == ["/fleet/payload.bin"]


def test_name_without_any_source_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, no_assets: Path
) -> None:
    register_payload(tmp_path, monkeypatch, [])
    with pytest.raises(RegistryError, match="EDGECV_MODEL_DIR"):
        registry.resolve("payload")


# --- errors -------------------------------------------------------------------------------------


def test_unknown_name_lists_known_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_registry(tmp_path, monkeypatch, {"fleet-model": {"file": "f.onnx", "sha256": PAYLOAD_SHA}})
    with pytest.raises(RegistryError) as caught:
        registry.resolve("no-such-model")
    text = str(caught.value)
    assert "no-such-model" in text
    for name in ("yolov8n", "yolov8n-int8", "yolo11n-320", "yolox-nano", "fleet-model"):
        assert name in text


@pytest.mark.parametrize("missing", ["missing_model.onnx", "some/dir/model"])
def test_missing_path_is_a_model_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        registry.resolve(missing)


def test_unreadable_registry_file_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "registry.json"
    bad.write_text("{not json")
    monkeypatch.setenv("EDGECV_REGISTRY", str(bad))
    with pytest.raises(ConfigError, match="EDGECV_REGISTRY"):
        registry.resolve("yolov8n")
    monkeypatch.setenv("EDGECV_REGISTRY", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="EDGECV_REGISTRY"):
        registry.resolve("yolov8n")


# --- end to end ---------------------------------------------------------------------------------


def test_load_registry_name_downloaded_from_local_mirror(
    monkeypatch: pytest.MonkeyPatch,
    cache: Path,
    server: Server,
    no_assets: Path,
    models: Path,
    bus_path: Path,
) -> None:
    shutil.copyfile(models / "yolov8n_int8.onnx", server.root / "yolov8n_int8.onnx")
    monkeypatch.setenv("EDGECV_MODEL_MIRROR_URL", server.url)
    model = edgecv.load("yolov8n-int8")
    assert server.requests == ["/yolov8n_int8.onnx"]
    assert model.spec.path == cache / "models" / "yolov8n_int8.onnx"
    assert model.spec.sha256 == registry.BUILTIN["yolov8n-int8"].sha256
    detections = model(bus_path)
    assert detections.labels == ["person", "person", "person", "bus", "person"]
    np.testing.assert_allclose(detections.scores, [0.899, 0.896, 0.890, 0.822, 0.312], atol=0.01)


# --- the embedded default model (issue 13: item 3) -----------------------------------------------

EMBEDDED = Path(edgecv.__file__).parent / "models"


def test_the_default_model_ships_inside_edgecv(cache: Path, no_assets: Path) -> None:
    """No assets, an empty cache, no URL tried: the default resolves to the file in the package."""
    entry = registry.BUILTIN[registry.DEFAULT_MODEL]
    assert registry.resolve(registry.DEFAULT_MODEL) == EMBEDDED / entry.file
    assert registry.source(registry.DEFAULT_MODEL, entry) == registry.Source(
        "embedded", str(EMBEDDED / entry.file)
    )
    assert cache_files(cache) == []
    assert entry.license == "Apache-2.0"


def test_the_embedded_model_is_yolox_nano_from_the_assets(models: Path) -> None:
    assert registry.DEFAULT_MODEL == "yolox-nano"
    assert (EMBEDDED / "yolox_nano.onnx").read_bytes() == (models / "yolox_nano.onnx").read_bytes()


def test_only_redistributable_models_are_shipped_with_their_notice() -> None:
    """Apache-2.0 asks for the licence and the copyright notice; AGPL-3.0 weights stay out."""
    shipped = {path.name for path in EMBEDDED.iterdir() if path.is_file()}
    by_file = {entry.file: entry for entry in registry.BUILTIN.values()}
    models = shipped - {"NOTICE"}
    assert models == {"yolox_nano.onnx"}
    assert all(by_file[name].license == "Apache-2.0" for name in models)
    notice = (EMBEDDED / "NOTICE").read_text(encoding="utf-8")
    for needed in (
        "yolox_nano.onnx",
        by_file["yolox_nano.onnx"].sha256,
        "Apache License, Version 2.0",
        "Copyright (c) 2021-2022 Megvii Inc.",
        "Copyright (c) 2023 hamacom2004jp",
    ):
        assert needed in notice, needed
    assert {entry.license for entry in registry.BUILTIN.values()} == {"Apache-2.0", "AGPL-3.0"}


def test_the_embedded_copy_counts_only_with_the_entry_sha(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, no_assets: Path
) -> None:
    """A registry file that gives yolox-nano another sha256 does not get the shipped file."""
    write_registry(
        tmp_path,
        monkeypatch,
        {
            "yolox-nano": {"file": "yolox_nano.onnx", "sha256": OTHER_SHA},
            "fleet-nano": {"file": "yolox_nano.onnx", "sha256": registry.BUILTIN["yolox-nano"].sha256},
        },
    )
    with pytest.raises(RegistryError, match="no download URL"):
        registry.resolve("yolox-nano")
    assert registry.resolve("fleet-nano") == EMBEDDED / "yolox_nano.onnx"  # the same bytes


def test_a_registry_file_may_give_a_license(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_registry(tmp_path, monkeypatch, {"payload": {**GOOD, "license": "CC-BY-4.0"}, "bare": GOOD})
    assert registry.entries()["payload"].license == "CC-BY-4.0"
    assert registry.entries()["bare"].license == ""


# --- an untrusted registry file (issue 12: items 1 and 14) ---------------------------------------

ESCAPES = [
    "../../escaped/payload.bin",
    "fleet/../../../escaped/payload.bin",
    "..",
    ".",
    "",
    "fleet//payload.bin",
    "a\x00b.bin",
    "..\\..\\escaped\\payload.bin",
    "C:payload.bin",
    "/",
]


@pytest.mark.parametrize("file", ESCAPES)
def test_entry_file_outside_the_cache_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path, file: str
) -> None:
    (server.root / "payload.bin").write_bytes(PAYLOAD)
    write_registry(
        tmp_path,
        monkeypatch,
        {
            "payload": {
                "file": file,
                "sha256": PAYLOAD_SHA,
                "urls": [f"{server.url}/payload.bin"],
            }
        },
    )
    with pytest.raises(ConfigError) as caught:
        registry.resolve("payload")
    assert "EDGECV_REGISTRY" in str(caught.value)
    assert "'payload'" in str(caught.value)
    assert "'file'" in str(caught.value)
    assert server.requests == []
    assert not (tmp_path / "escaped").exists()
    assert not cache.exists()


def test_entry_file_with_an_absolute_path_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path
) -> None:
    outside = tmp_path / "outside" / "payload.bin"
    (server.root / "payload.bin").write_bytes(PAYLOAD)
    write_registry(
        tmp_path,
        monkeypatch,
        {"payload": {"file": str(outside), "sha256": PAYLOAD_SHA, "urls": [f"{server.url}/payload.bin"]}},
    )
    with pytest.raises(ConfigError, match="'payload'"):
        registry.resolve("payload")
    assert not outside.parent.exists()
    assert server.requests == []


def test_entry_file_may_name_a_subfolder_inside_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path
) -> None:
    (server.root / "payload.bin").write_bytes(PAYLOAD)
    write_registry(
        tmp_path,
        monkeypatch,
        {
            "payload": {
                "file": "fleet/payload.bin",
                "sha256": PAYLOAD_SHA,
                "urls": [f"{server.url}/payload.bin"],
            }
        },
    )
    assert registry.resolve("payload") == cache / "models" / "fleet" / "payload.bin"


def test_cache_subfolder_linked_outside_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, server: Server, no_assets: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "fleet").symlink_to(outside)
    (server.root / "payload.bin").write_bytes(PAYLOAD)
    write_registry(
        tmp_path,
        monkeypatch,
        {
            "payload": {
                "file": "fleet/payload.bin",
                "sha256": PAYLOAD_SHA,
                "urls": [f"{server.url}/payload.bin"],
            }
        },
    )
    with pytest.raises(ConfigError, match="outside"):
        registry.resolve("payload")
    assert list(outside.iterdir()) == []


GOOD = {"file": "payload.bin", "sha256": PAYLOAD_SHA, "urls": ["http://127.0.0.1:9/payload.bin"]}


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({**GOOD, "file": 5}, "'file' must be a string"),
        ({**GOOD, "sha256": "abc"}, "'sha256' must be 64 hexadecimal digits"),
        ({**GOOD, "sha256": None}, "'sha256' must be 64 hexadecimal digits"),
        ({**GOOD, "urls": "http://127.0.0.1:9/payload.bin"}, "'urls' must be a list of strings"),
        ({**GOOD, "urls": [5]}, "'urls' must be a list of strings"),
        ({**GOOD, "size": -1}, "'size' must be a positive number of bytes"),
        ({**GOOD, "size": True}, "'size' must be a positive number of bytes"),
        ({**GOOD, "size": "100"}, "'size' must be a positive number of bytes"),
        ({**GOOD, "description": ["x"]}, "'description' must be a string"),
        ({**GOOD, "license": 3}, "'license' must be a string"),
        ({**GOOD, "license": None}, "'license' must be a string"),
        ({**GOOD, "sha": PAYLOAD_SHA}, "unknown field(s) 'sha'"),
        ({"file": "payload.bin"}, "lacks field(s) 'sha256'"),
        (["payload.bin", PAYLOAD_SHA], "must be a JSON object, not a list"),
    ],
)
def test_registry_entry_with_a_wrong_field_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: object, fragment: str
) -> None:
    write_registry(tmp_path, monkeypatch, {"payload": entry, "fine": GOOD})
    with pytest.raises(ConfigError) as caught:
        registry.resolve("payload")
    message = str(caught.value)
    assert "EDGECV_REGISTRY" in message
    assert "entry 'payload'" in message
    assert fragment in message


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ([{"payload": GOOD}], ("EDGECV_REGISTRY", "a JSON list", "must be an object")),
        ({"payload": {**GOOD, "file": 5}}, ("EDGECV_REGISTRY", "entry 'payload'", "'file' must be a string")),
        (
            {"payload": {**GOOD, "file": "../../escaped/payload.bin"}},
            ("EDGECV_REGISTRY", "entry 'payload'", "'file'", "inside the cache"),
        ),
    ],
)
def test_bad_registry_is_one_error_line_from_the_cli(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cache: Path,
    bus_path: Path,
    content: object,
    fragments: tuple[str, ...],
) -> None:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(content))
    monkeypatch.setenv("EDGECV_REGISTRY", str(path))
    assert_one_line_error(run_edgecv("predict", "--model", "payload", bus_path), *fragments)
    assert not (tmp_path / "escaped").exists()


def test_builtin_entries_carry_their_sizes(models: Path) -> None:
    for entry in registry.BUILTIN.values():
        assert entry.size == (models / entry.file).stat().st_size


# --- bounded downloads (issue 12: item 7) --------------------------------------------------------

TRICKLE_S = 0.2  # one byte every TRICKLE_S seconds
TRICKLE_FOR_S = 6.0  # then the hostile server gives up, so that a client without a deadline still ends


class _HostileHandler(http.server.BaseHTTPRequestHandler):
    """Answers the ways a hostile or broken mirror does; ``stop`` ends every answer early."""

    protocol_version = "HTTP/1.0"
    stop: threading.Event
    requests: list[tuple[str, dict[str, str]]]
    credentials = base64.b64encode(b"edge:p@ss/w:rd").decode()

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append((self.path, dict(self.headers)))
        with contextlib.suppress(OSError):  # the client gave up, as it should
            getattr(self, "answer_" + self.path.strip("/").split("/")[0].replace("-", "_"))()

    def _trickle(self, data: bytes) -> None:
        end = time.monotonic() + TRICKLE_FOR_S
        for byte in data:
            if self.stop.wait(TRICKLE_S) or time.monotonic() > end:
                return
            self.wfile.write(bytes([byte]))

    def answer_endless(self) -> None:
        self.send_response(200)
        self.end_headers()
        block = b"\0" * (1 << 16)
        while not self.stop.is_set():
            self.wfile.write(block)

    def answer_huge(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10**12))
        self.end_headers()
        self.answer_endless()

    def answer_trickle_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self._trickle(PAYLOAD)

    def answer_trickle_headers(self) -> None:
        self._trickle(b"HTTP/1.0 200 OK\r\nContent-Length: 3000\r\nX-Slow: " + b"x" * 1000 + b"\r\n\r\n")

    def answer_silent(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.stop.wait(TRICKLE_FOR_S)

    def answer_auth(self) -> None:
        if self.headers.get("Authorization") != f"Basic {self.credentials}":
            self.send_error(401, "Unauthorized")
            return
        if self.path.endswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/plain")
            self.end_headers()
            return
        self._payload()

    def answer_plain(self) -> None:
        self._payload()

    def _payload(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)


@attrs.define
class Hostile:
    url: str
    port: int
    requests: list[tuple[str, dict[str, str]]]


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    stop = threading.Event()
    requests: list[tuple[str, dict[str, str]]] = []
    handler = type("Handler", (_HostileHandler,), {"stop": stop, "requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    try:
        yield Hostile(f"http://127.0.0.1:{port}", port, requests)
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def partial_files(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.part")) if cache.exists() else []


@pytest.mark.parametrize("size", [None, 1 << 30])  # an entry's size does not lift the cap
def test_endless_body_stops_at_the_size_limit(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cache: Path,
    hostile: Hostile,
    no_assets: Path,
    size: int | None,
) -> None:
    monkeypatch.setattr(registry, "MAX_DOWNLOAD_BYTES", 1 << 20)
    entry = {**GOOD, "urls": [f"{hostile.url}/endless"]} | ({} if size is None else {"size": size})
    write_registry(tmp_path, monkeypatch, {"payload": entry})
    with pytest.raises(
        RegistryError, match=r"more than 1048576 bytes \(edgecv.registry.MAX_DOWNLOAD_BYTES\)"
    ):
        registry.resolve("payload")
    assert cache_files(cache) == []
    assert partial_files(cache) == []


def test_endless_body_stops_at_the_entry_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, hostile: Hostile, no_assets: Path
) -> None:
    write_registry(
        tmp_path,
        monkeypatch,
        {"payload": {**GOOD, "size": len(PAYLOAD), "urls": [f"{hostile.url}/endless"]}},
    )
    with pytest.raises(RegistryError, match=rf"more than {len(PAYLOAD)} bytes \(the registry entry's size\)"):
        registry.resolve("payload")
    assert cache_files(cache) == []


def test_announced_size_over_the_limit_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, hostile: Hostile, no_assets: Path
) -> None:
    register_payload(tmp_path, monkeypatch, [f"{hostile.url}/huge"])
    with pytest.raises(RegistryError, match=r"announces 1000000000000 bytes"):
        registry.resolve("payload")
    assert cache_files(cache) == []


@pytest.mark.parametrize("answer", ["trickle-body", "trickle-headers", "silent"])
def test_slow_download_fails_at_the_deadline(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cache: Path,
    hostile: Hostile,
    no_assets: Path,
    answer: str,
) -> None:
    monkeypatch.setenv("EDGECV_DOWNLOAD_DEADLINE_S", "1")
    register_payload(tmp_path, monkeypatch, [f"{hostile.url}/{answer}"])
    started = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        registry.resolve("payload")
    elapsed = time.monotonic() - started
    assert "did not finish within 1 s" in str(caught.value)
    assert "EDGECV_DOWNLOAD_DEADLINE_S" in str(caught.value)
    assert elapsed < 1 + 4 * TRICKLE_S, elapsed
    assert cache_files(cache) == []


def test_bad_deadline_setting_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, hostile: Hostile, no_assets: Path
) -> None:
    monkeypatch.setenv("EDGECV_DOWNLOAD_DEADLINE_S", "soon")
    register_payload(tmp_path, monkeypatch, [f"{hostile.url}/plain"])
    with pytest.raises(ConfigError, match="EDGECV_DOWNLOAD_DEADLINE_S"):
        registry.resolve("payload")


def test_ctrl_c_during_a_download_leaves_no_partial_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cache: Path,
    hostile: Hostile,
    no_assets: Path,
    bus_path: Path,
) -> None:
    register_payload(tmp_path, monkeypatch, [f"{hostile.url}/trickle-body"])
    child = subprocess.Popen(
        [sys.executable, "-m", "edgecv", "predict", "--model", "payload", str(bus_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.monotonic() + 20
        while not partial_files(cache) and child.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
        assert partial_files(cache), child.poll()
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=10)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 130, stderr
    assert partial_files(cache) == []
    assert cache_files(cache) == []


def test_file_urls_are_refused_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, no_assets: Path
) -> None:
    local = tmp_path / "local" / "payload.bin"
    local.parent.mkdir()
    local.write_bytes(PAYLOAD)
    register_payload(tmp_path, monkeypatch, [local.as_uri()])
    with pytest.raises(RegistryError, match="EDGECV_ALLOW_FILE_URLS=1") as caught:
        registry.resolve("payload")
    assert "file://" in str(caught.value)
    assert cache_files(cache) == []
    monkeypatch.setenv("EDGECV_ALLOW_FILE_URLS", "1")
    assert registry.resolve("payload").read_bytes() == PAYLOAD


def test_allowed_file_url_is_still_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, no_assets: Path
) -> None:
    monkeypatch.setenv("EDGECV_ALLOW_FILE_URLS", "1")
    write_registry(tmp_path, monkeypatch, {"payload": {**GOOD, "size": 4096, "urls": ["file:///dev/zero"]}})
    with pytest.raises(RegistryError, match="more than 4096 bytes"):
        registry.resolve("payload")
    assert cache_files(cache) == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/payload.bin", "data:,hello"])
def test_other_url_schemes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, no_assets: Path, url: str
) -> None:
    register_payload(tmp_path, monkeypatch, [url])
    with pytest.raises(RegistryError, match="only http:// and https://"):
        registry.resolve("payload")


# --- credentials in registry URLs (issue 12: item 11) --------------------------------------------


def test_url_credentials_are_sent_as_basic_auth_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, hostile: Hostile, no_assets: Path
) -> None:
    base = f"http://edge:p%40ss%2Fw%3Ard@127.0.0.1:{hostile.port}"
    register_payload(tmp_path, monkeypatch, [f"{base}/auth/payload.bin?token=Zebra9b"])
    assert registry.resolve("payload").read_bytes() == PAYLOAD
    path, headers = hostile.requests[0]
    assert path == "/auth/payload.bin?token=Zebra9b"
    assert headers["Authorization"] == f"Basic {_HostileHandler.credentials}"


def test_credentials_do_not_follow_a_redirect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, hostile: Hostile, no_assets: Path
) -> None:
    register_payload(
        tmp_path, monkeypatch, [f"http://edge:p%40ss%2Fw%3Ard@127.0.0.1:{hostile.port}/auth/redirect"]
    )
    assert registry.resolve("payload").read_bytes() == PAYLOAD
    assert [path for path, _ in hostile.requests] == ["/auth/redirect", "/plain"]
    assert "Authorization" not in hostile.requests[1][1]


@pytest.mark.parametrize(
    "url",
    [
        "http://edge:Hunter2a@127.0.0.1:{port}/missing?token=Zebra9b",  # 404
        "http://edge:Hunter2a/Zebra9b@127.0.0.1:{port}/plain",  # "/" in the password: a bad port
        "http://edge:Hunter2a@127.0.0.1:99999/plain",
        "http://edge:Hunter2a@/plain",
        "http://edge:Hunter2a@[::1/plain",
        "http://127.0.0.1:{port}/plain bad?token=Zebra9b",  # http.client quotes the path and query
    ],
)
def test_download_errors_show_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, hostile: Hostile, no_assets: Path, url: str
) -> None:
    monkeypatch.setenv("EDGECV_MODEL_MIRROR_URL", "https://mirror:Hunter2a@127.0.0.1:1/m?Zebra9b")
    register_payload(tmp_path, monkeypatch, [url.format(port=hostile.port)])
    with pytest.raises(RegistryError) as caught:
        registry.resolve("payload")
    assert "Hunter2a" not in str(caught.value)
    assert "Zebra9b" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)

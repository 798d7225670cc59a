"""Model names -> files: mirrors, cache, verified downloads from a real local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import numpy as np
import pytest

import edgecv
from edgecv import registry
from edgecv.errors import ModelError, RegistryError

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


def test_unreadable_registry_file_is_a_registry_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "registry.json"
    bad.write_text("{not json")
    monkeypatch.setenv("EDGECV_REGISTRY", str(bad))
    with pytest.raises(RegistryError, match="EDGECV_REGISTRY"):
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

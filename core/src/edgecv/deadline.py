"""A wall-clock deadline on a whole HTTP exchange (connect, TLS, send, answer), for urllib.

urllib's ``timeout`` bounds each socket operation, not their sum: a server that trickles its
answer a byte at a time holds a download, or a sync request and so the shutdown waiting on it, as
long as it likes. A ``Deadline`` opens the exchange's sockets itself and shuts them down when its
time is up (or when ``expire()`` is called, e.g. by a closing sink), which wakes a blocked read at
once. Used by the model registry's downloads and by ``HttpSink``.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.request
from typing import Any


class Deadline:
    """``seconds`` from ``__enter__``'s start of the timer for everything opened through ``connect``."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds
        self.expired = False
        """True once the sockets were shut down: by the timer or by ``expire()``."""
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True

    @property
    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self._end

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def connect(
        self, address: tuple[str, int], timeout: object = None, source_address: tuple[str, int] | None = None
    ) -> socket.socket:
        """``socket.create_connection`` for http.client, within the deadline and shut down at it."""
        remaining = self._end - time.monotonic()
        if remaining <= 0 or self.expired:
            raise TimeoutError("the deadline passed")
        wait = min(timeout, remaining) if isinstance(timeout, (int, float)) else remaining
        sock = socket.create_connection(address, wait, source_address)
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut_down(sock)
        return sock

    def expire(self) -> None:
        """End the exchange now: every socket opened through ``connect`` is shut down."""
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread; close() would not


class _DeadlineHandler(urllib.request.AbstractHTTPHandler):
    """urllib's HTTP(S) handler with connections that open their sockets through a ``Deadline``."""

    def __init__(self, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline = deadline

    def do_open(
        self, http_class: Any, req: urllib.request.Request, **kwargs: Any
    ) -> http.client.HTTPResponse:
        def connection(host: str, **options: Any) -> http.client.HTTPConnection:
            made: http.client.HTTPConnection = http_class(host, **options)
            # http.client opens its socket (the TLS handshake included) through this attribute.
            made._create_connection = self.deadline.connect  # type: ignore[attr-defined]
            return made

        return super().do_open(connection, req, **kwargs)


class HTTPHandler(_DeadlineHandler, urllib.request.HTTPHandler):
    """``http://`` within ``deadline``."""


class HTTPSHandler(_DeadlineHandler, urllib.request.HTTPSHandler):
    """``https://`` within ``deadline``; certificates and host names are always verified."""

    def __init__(self, deadline: Deadline, context: ssl.SSLContext | None = None) -> None:
        super().__init__(deadline, context=context or ssl.create_default_context())

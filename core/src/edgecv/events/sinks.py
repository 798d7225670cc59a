"""Where synced events go: an HTTP endpoint or an MQTT broker (plugins add others).

Imported only when a run syncs (urllib, paho). ``edgecv.runtime.observers.open_sink(url)`` asks
the plugins (``edgecv_event_sink``) for a sink; ``core_sink`` here is the core's ``trylast`` answer.

A sink's ``send(batch)`` returns only once the receiver acknowledged every event of the batch
(HTTP: a 2xx answer; MQTT: a PUBACK per message) and raises ``SyncError`` otherwise, so the
``Syncer`` deletes nothing the receiver does not hold. A failed batch is sent again whole, so
receivers see duplicates and de-duplicate by the event's ``id``. ``close()`` may be called from
another thread while a ``send`` is in flight: the send then fails promptly (its batch stays queued).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from http.client import HTTPException
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import edgecv
from edgecv.deadline import Deadline, HTTPHandler, HTTPSHandler
from edgecv.errors import ConfigError, EdgecvError, one_line
from edgecv.events.model import Event
from edgecv.urls import redact, split_credentials

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

MQTT_MISSING = "MQTT sync needs paho-mqtt: pip install 'paho-mqtt>=2.0' (edgecv-core's mqtt extra)"
MAX_ANSWER_BYTES = 64 * 1024
"""The most of an HTTP answer read: the status is the acknowledgement, the body only a detail."""


class SyncError(EdgecvError):
    """A batch was not acknowledged by the receiver; its events stay queued and are sent again."""


@runtime_checkable
class EventSink(Protocol):
    """Delivers batches of events; see the module docstring for the contract."""

    name: str
    """The URL without credentials or query, for logs and messages."""

    def send(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


def public_name(url: str | SplitResult) -> str:
    """``url`` without user, password, query or fragment (``edgecv.urls.redact``)."""
    return redact(url if isinstance(url, str) else url.geturl())


def batch_key(events: Sequence[Event]) -> str:
    """The ``Idempotency-Key`` of a batch: the same events in the same order give the same key."""
    return hashlib.sha256("\n".join(e.id for e in events).encode()).hexdigest()


def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError as exc:  # "[::1" without "]", odd Unicode; urllib's message may quote the netloc
        raise ConfigError(f"Sync URL {redact(url)!r} is malformed", "Check the host part.") from exc


def _port(parts: SplitResult, url: str) -> int | None:
    try:
        return parts.port
    except ValueError as exc:  # urllib's message quotes the port text: a password cut at "/" or "?"
        raise ConfigError(
            f"Sync URL {redact(url)!r} has a bad port",
            "Percent-encode @ / ? # in the user name or password (%40 %2F %3F %23).",
        ) from exc


# --- HTTP --------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is not an acknowledgement: urllib would turn a redirected POST into a GET."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HttpSink:
    """POSTs ``{"events": [...]}`` as JSON; any 2xx answer acknowledges the whole batch.

    Redirects are not followed (they count as failures). ``user:password@`` in the URL is sent as
    HTTP Basic authentication. ``timeout_s`` bounds the whole request (connect, send, answer), and
    at most ``MAX_ANSWER_BYTES`` of the answer are read.
    """

    def __init__(
        self, url: str, *, timeout_s: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> None:
        parts = _split(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"Not an HTTP sync URL: {redact(url)!r}", "use http(s)://host[:port]/path")
        _port(parts, url)
        self.name = public_name(parts)
        self.timeout_s = timeout_s
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"edgecv/{edgecv.__version__}",
            **(headers or {}),
        }
        self._url, authorization = split_credentials(
            urlunsplit(parts._replace(path=parts.path or "/", fragment=""))
        )
        if authorization is not None:
            self._headers["Authorization"] = authorization
        self._tls = ssl.create_default_context()  # certificates and host names always verified
        self._tls.set_alpn_protocols(["http/1.1"])
        self._in_flight: set[Deadline] = set()
        self._lock = threading.Lock()

    def send(self, events: Sequence[Event]) -> None:
        if not events:
            return
        body = json.dumps({"events": [e.to_dict() for e in events]}, separators=(",", ":")).encode()
        deadline = Deadline(self.timeout_s)
        request = urllib.request.Request(
            self._url,
            data=body,
            method="POST",
            headers={**self._headers, "Idempotency-Key": batch_key(events)},
        )
        what = f"POST {self.name} ({len(events)} events) failed"
        with self._lock:
            self._in_flight.add(deadline)
        try:
            with deadline:
                reason = self._exchange(request, deadline)
        except urllib.error.URLError as exc:
            reason = _os_reason(exc.reason, self.timeout_s)
        except (OSError, HTTPException) as exc:
            reason = _os_reason(exc, self.timeout_s)
        finally:
            with self._lock:
                self._in_flight.discard(deadline)
        if deadline.expired:  # whatever the cut connection raised, or an answer that looked whole
            raise SyncError(f"{what}: no answer within {self.timeout_s:g} s")
        if reason:
            raise SyncError(f"{what}: {reason}")

    def _exchange(self, request: urllib.request.Request, deadline: Deadline) -> str:
        """POST ``request``; ``""`` for an acknowledgement (2xx), else why the answer is not one."""
        opener = urllib.request.build_opener(
            _NoRedirect(), HTTPHandler(deadline), HTTPSHandler(deadline, self._tls)
        )
        try:
            with opener.open(request, timeout=self.timeout_s) as response:
                _read_answer(response)  # a connection cut mid-answer is not an ack
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            detail = _error_body(exc)
            return f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
        return "" if 200 <= status < 300 else f"HTTP {status}"  # the opener raises for the others

    def close(self) -> None:
        """Cut the requests in flight (their batches stay queued); the sink stays usable."""
        with self._lock:
            in_flight = list(self._in_flight)
        for deadline in in_flight:
            deadline.expire()


def _read_answer(response: http.client.HTTPResponse) -> None:
    """Read the answer's body to its end, or ``MAX_ANSWER_BYTES`` of it; raises if it was cut short."""
    left = MAX_ANSWER_BYTES
    while left > 0:
        chunk = response.read(min(left, 16 * 1024))
        if not chunk:
            if response.length:  # read(amt) returns b"" at a premature end instead of raising
                raise http.client.IncompleteRead(b"", response.length)
            return
        left -= len(chunk)


def _error_body(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read(1024) if error.fp is not None else b""  # a detail for one line, no more
        return one_line(text.decode("utf-8", "replace"))
    except (OSError, HTTPException):  # the server cut the error answer short: the status suffices
        return ""
    finally:
        error.close()


def _os_reason(reason: object, timeout_s: float) -> str:
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    if isinstance(reason, HTTPException):
        text = str(reason)
        return f"{type(reason).__name__}" + (f": {one_line(text)}" if text else "")
    return one_line(str(reason)) or type(reason).__name__


# --- MQTT --------------------------------------------------------------------------------------


class MqttSink:
    """Publishes each event as one JSON message with QoS 1 to the URL's topic.

    One message per event (not one per batch) so that fleet consumers handle events one by one
    and de-duplicate by ``id``. ``send`` returns after the broker PUBACKed every message, which
    is MQTT's acknowledgement. It connects on first use; after any failure the connection is
    dropped (with the messages paho still held) and the next ``send`` connects afresh.
    ``timeout_s`` bounds one ``send``: connecting and waiting for every PUBACK.
    """

    def __init__(self, url: str, *, timeout_s: float = 10.0, client_id: str | None = None) -> None:
        try:
            import paho.mqtt.client  # noqa: F401 - fail here, at start-up, not at the first send
        except ImportError as exc:
            raise ConfigError(MQTT_MISSING) from exc
        parts = _split(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(
                f"Not an MQTT sync URL: {redact(url)!r}", "use mqtt://[user:pass@]host[:1883]/topic"
            )
        topic = unquote(parts.path.lstrip("/"))
        if not topic or "#" in url or "+" in topic or parts.query:  # urlsplit reads "#" as a fragment
            raise ConfigError(
                f"MQTT sync URL {public_name(parts)!r} needs a topic without wildcards or query",
                "use mqtt://host/edgecv/events",
            )
        self.name = public_name(parts)
        self.topic = topic
        self.timeout_s = timeout_s
        self._host = parts.hostname
        self._port = _port(parts, url) or (8883 if parts.scheme == "mqtts" else 1883)
        self._tls = parts.scheme == "mqtts"
        self._username = unquote(parts.username) if parts.username is not None else None
        self._password = unquote(parts.password) if parts.password is not None else None
        self._client_id = client_id or f"edgecv-{uuid.uuid4().hex[:12]}"
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._refusal: str | None = None
        self._lock = threading.Lock()  # one send at a time; the client is not shared mid-batch
        self._closing = threading.Event()  # close() ends a send in flight instead of waiting for it

    def send(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with self._lock:
            deadline = time.monotonic() + self.timeout_s
            try:
                client = self._connect(deadline)
                self._publish_all(client, events, deadline)
            except SyncError:
                self._drop()
                raise

    def close(self) -> None:
        """Drop the connection, ending a send in flight (its batch stays queued); the sink stays usable."""
        self._closing.set()
        try:
            with self._lock:
                self._drop()
        finally:
            self._closing.clear()

    def _fail(self, reason: str) -> SyncError:
        return SyncError(f"MQTT publish to {self.name} failed: {reason}")

    def _connect(self, deadline: float) -> mqtt.Client:
        if self._client is not None and self._connected.is_set():
            return self._client
        self._drop()
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
            reconnect_on_failure=False,  # send() reconnects; paho's retry loop would delay loop_stop()
        )
        client.connect_timeout = max(0.1, min(5.0, deadline - time.monotonic()))
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        if self._tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._refusal = None
        self._connected.clear()
        try:
            client.connect(self._host, self._port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise self._fail(
                f"cannot connect to the broker: {_os_reason(exc, client.connect_timeout)}"
            ) from exc
        self._client = client
        client.loop_start()
        while not self._connected.wait(0.05):
            if self._closing.is_set():
                raise self._fail("the sink was closed")
            if self._refusal is not None:
                raise self._fail(f"the broker refused the connection: {self._refusal}")
            if time.monotonic() > deadline:
                raise self._fail(f"no CONNACK within {self.timeout_s:g} s")
        return client

    def _publish_all(self, client: mqtt.Client, events: Sequence[Event], deadline: float) -> None:
        import paho.mqtt.client as mqtt

        infos = []
        for event in events:
            payload = json.dumps(event.to_dict(), separators=(",", ":"))
            info = client.publish(self.topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise self._fail(mqtt.error_string(info.rc).rstrip("."))
            infos.append(info)
        try:
            for info in infos:
                # Short waits, so that a lost connection fails the batch now rather than at the deadline.
                while not info.is_published():
                    if self._closing.is_set():
                        raise self._fail("the sink was closed")
                    if not self._connected.is_set():
                        raise self._fail("lost the connection to the broker before every PUBACK")
                    if time.monotonic() > deadline:
                        raise self._fail(f"no PUBACK within {self.timeout_s:g} s")
                    info.wait_for_publish(0.05)
        except (RuntimeError, ValueError) as exc:  # paho: the message was not queued or failed
            raise self._fail(str(exc).rstrip(".")) from exc

    def _drop(self) -> None:
        client, self._client = self._client, None
        self._connected.clear()
        if client is None:
            return
        client.on_connect = client.on_disconnect = None
        client.disconnect()  # the network thread ends once the socket is closed
        client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refusal = str(reason)
        else:
            self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()


# --- discovery ---------------------------------------------------------------------------------

_OPTIONS = {"http": {"timeout_s", "headers"}, "mqtt": {"timeout_s", "client_id"}}


def core_sink(url: str, options: Mapping[str, Any]) -> EventSink | None:
    """The core's sinks: ``http(s)://`` → ``HttpSink``, ``mqtt(s)://`` → ``MqttSink``.

    Reached through ``edgecv.runtime.defaults.edgecv_event_sink`` (``trylast``), which imports this
    module only when a run syncs.
    """
    scheme = _split(url).scheme.lower()
    family = {"http": "http", "https": "http", "mqtt": "mqtt", "mqtts": "mqtt"}.get(scheme)
    if family is None:
        return None
    unknown = sorted(set(options) - _OPTIONS[family])
    if unknown:
        raise ConfigError(
            f"Unknown {scheme} sink option(s): {', '.join(unknown)}",
            f"use {', '.join(sorted(_OPTIONS[family]))}",
        )
    if family == "http":
        return HttpSink(url, **options)
    return MqttSink(url, **options)

"""URLs that may carry secrets: how edgecv shows them, and how it sends their credentials.

Every URL edgecv prints (sync receivers, MQTT brokers, model downloads, video streams) goes
through ``redact``, so that ``user:password@``, ``?token=…`` query strings and fragments never
reach a message or a log.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote, urlsplit, urlunsplit

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://(.*)", re.DOTALL)
_END_OF_HOST = re.compile(r"[/?#]")
_QUERY_OR_FRAGMENT = re.compile(r"[?#]")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")


def redact(url: str) -> str:
    """``url`` without user, password, query or fragment, for messages and logs; never raises.

    Safety comes before fidelity: a password may hold an unescaped ``@``, ``/``, ``?`` or ``#``,
    so everything up to the *last* ``@`` counts as credentials. When that ``@`` lies beyond what
    a URL parser reads as the host, the result starts with ``***@`` to show that a part was cut
    (``http://u:pa/ss@host/x`` -> ``http://***@host/x``). Text without ``scheme://`` (a path, a
    camera index) is returned as it is, unless it starts like ``user:password@``.
    """
    try:
        return _redact(str(url))
    except Exception:  # a message must never fail because of the URL in it
        return "<URL hidden>"


def _redact(text: str) -> str:
    match = _URL.fullmatch(text)
    if match is None:
        head, at, tail = text.rpartition("@")
        return f"***@{tail}" if at and ":" in head else text
    scheme, rest = match.group(1).lower(), match.group(2)
    host_end = _END_OF_HOST.search(rest)
    netloc_length = host_end.start() if host_end else len(rest)
    credentials, at, shown = rest.rpartition("@")
    marker = "***@" if at and len(credentials) >= netloc_length else ""
    if not at:
        shown = rest
    return f"{scheme}://{marker}{_QUERY_OR_FRAGMENT.split(shown, maxsplit=1)[0]}"


def redact_within(text: str) -> str:
    """``text`` (a GStreamer pipeline, a command line) with every ``scheme://…`` in it ``redact``-ed."""
    return _URL_IN_TEXT.sub(lambda match: redact(match.group()), text)


def scrub(text: str, url: str) -> str:
    """``text`` (say, a library's error message about ``url``) with ``url``'s secrets replaced by ``***``."""
    text = text.replace(url, redact(url))
    try:
        parts = urlsplit(url)
        secrets = {parts.username, parts.password, parts.query, parts.fragment}
    except ValueError:  # malformed: hide whatever sits between the scheme and the last "@"
        secrets = {url.partition("://")[2].rpartition("@")[0]}
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without ``user:password@``, and the ``Authorization`` value that carries them.

    The value is ``None`` when the URL names no user. User and password are percent-decoded, so
    an ``@`` or ``/`` in either is written ``%40`` or ``%2F``. Raises ``ValueError`` for a URL
    without a host or with a bad port; its message holds no part of the URL.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("a bad port or host (percent-encode @ / ? # in a user name or password)") from None
    if not parts.hostname:
        raise ValueError("no host")
    if parts.username is None:
        return url, None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return bare, "Basic " + base64.b64encode(credentials.encode()).decode()

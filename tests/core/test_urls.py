"""``edgecv.urls.redact``: no URL edgecv prints shows a password, a token or a query string.

The sinks' names and errors go through it too: a malformed sync URL with credentials fails with
a message that holds none of them.
"""

from __future__ import annotations

import base64
import importlib.util

import pytest

from edgecv.errors import ConfigError
from edgecv.events.sinks import HttpSink, MqttSink, core_sink, public_name
from edgecv.urls import redact, scrub, split_credentials

# Two halves, so that a mask which cuts a password at its "/" or "@" is caught too.
SECRET_A, SECRET_B = "Hunter2a", "Zebra9b"

SHAPES = [
    # (url, what redact shows)
    ("http://edge:Hunter2a@host.example/ingest", "http://host.example/ingest"),
    ("https://Hunter2a@host.example:8443/x", "https://host.example:8443/x"),
    ("https://host.example/m.onnx?token=Hunter2a&x=Zebra9b", "https://host.example/m.onnx"),
    ("https://host.example/m.onnx#Hunter2a", "https://host.example/m.onnx"),
    ("http://edge:Hunter2a@Zebra9b@host.example/x", "http://host.example/x"),  # "@" in the password
    ("http://edge:Hunter2a/Zebra9b@host.example/x", "http://***@host.example/x"),  # "/" in it
    ("http://edge:Hunter2a?Zebra9b@host.example/x", "http://***@host.example/x"),  # "?" in it
    ("http://edge:Hunter2a#Zebra9b@host.example/x", "http://***@host.example/x"),  # "#" in it
    ("http://edge:Hunter2a%40Zebra9b@host.example/x", "http://host.example/x"),  # percent-encoded
    ("http://edge:Hunter2a@host.example:99999/x", "http://host.example:99999/x"),  # bad port
    ("http://edge:Hunter2a@host.example:abc/x", "http://host.example:abc/x"),
    ("http://edge:Hunter2a@/x", "http:///x"),  # no host
    ("http://edge:Hunter2a@", "http://"),
    ("http://edge:Hunter2a@[::1/x", "http://[::1/x"),  # urlsplit raises on this one
    ("http://edge:Hunter2a@[::1]:8080/x?Zebra9b", "http://[::1]:8080/x"),
    ("MQTTS://edge:Hunter2a@broker:8883/fleet/#", "mqtts://broker:8883/fleet/"),
    ("rtsp://edge:Hunter2a@cam.local/stream?auth=Zebra9b", "rtsp://cam.local/stream"),
    ("http://u:Hunter2a/Zebra9b@host/x?next=a@b", "http://***@b"),  # safety over fidelity
    ("edge:Hunter2a@host.example/topic", "***@host.example/topic"),  # no scheme
    ("http:/edge:Hunter2a@host.example", "***@host.example"),
    (" http://edge:Hunter2a@host.example", "***@host.example"),
]


@pytest.mark.parametrize(("url", "shown"), SHAPES)
def test_redact_hides_every_credential_shape(url: str, shown: str) -> None:
    result = redact(url)
    assert SECRET_A not in result
    assert SECRET_B not in result
    assert result == shown


@pytest.mark.parametrize(
    "text",
    ["https://host.example/models/yolo.onnx", "/data/cam@2/video.mp4", "0", "", "http://host:8080/a_b"],
)
def test_redact_leaves_urls_without_secrets_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_never_raises() -> None:
    class Hostile(str):
        def __str__(self) -> str:
            raise RuntimeError("boom")

    assert redact(Hostile("http://u:Hunter2a@h")) == "<URL hidden>"


def test_scrub_hides_the_parts_of_a_url_inside_a_message() -> None:
    url = "https://edge:Hunter2a@host.example/x?token=Zebra9b"
    text = scrub(f"cannot open {url}: bad URL '/x?token=Zebra9b'", url)
    assert SECRET_A not in text
    assert SECRET_B not in text
    assert "https://host.example/x" in text


def test_split_credentials_gives_basic_auth() -> None:
    bare, auth = split_credentials("https://edge:p%40ss%2Fw@Host.example:8443/m.onnx?v=1")
    assert bare == "https://host.example:8443/m.onnx?v=1"
    assert auth == "Basic " + base64.b64encode(b"edge:p@ss/w").decode()
    assert split_credentials("https://host.example/m.onnx") == ("https://host.example/m.onnx", None)
    assert split_credentials("http://edge:pw@[::1]:8080/m")[0] == "http://[::1]:8080/m"
    for bad in (
        "http://edge:Hunter2a/Zebra9b@host/x",
        "http://edge:Hunter2a@host:99999/x",
        "http://e:Hunter2a@/x",
    ):
        with pytest.raises(ValueError) as caught:
            split_credentials(bad)
        assert SECRET_A not in str(caught.value)


# --- the sinks -----------------------------------------------------------------------------------


def test_sink_names_go_through_redact() -> None:
    # "/" in the password: urlsplit reads host "edge", port 1234 and path "/Zebra9b@host.example/ingest".
    sink = HttpSink("http://edge:1234/Zebra9b@host.example/ingest")
    assert sink.name == "http://***@host.example/ingest"
    url = "https://edge:Hunter2a@host.example/ingest?token=Zebra9b"
    assert HttpSink(url).name == public_name(url) == redact(url)


BAD_SYNC_URLS = [
    "http://edge:Hunter2a@host.example:99999/ingest",  # port out of range
    "http://edge:Hunter2a/Zebra9b@host.example/ingest",  # "/" in the password: urlsplit sees port "Hunter2a"
    "http://edge:Hunter2a@/ingest",  # no host
    "http://edge:Hunter2a@[::1/ingest",  # urlsplit raises ValueError
    "https://edge:Hunter2a?Zebra9b@host.example/ingest",
]
MQTT_URLS = [url.replace("http", "mqtt", 1) for url in BAD_SYNC_URLS]


@pytest.mark.parametrize("url", BAD_SYNC_URLS + MQTT_URLS)
def test_malformed_sync_url_errors_hold_no_credential(url: str) -> None:
    if url.startswith("mqtt") and importlib.util.find_spec("paho") is None:
        pytest.skip("paho-mqtt is not installed")
    with pytest.raises(ConfigError) as caught:
        core_sink(url, {})
    message = str(caught.value)
    assert SECRET_A not in message
    assert SECRET_B not in message
    assert redact(url) in message


def test_mqtt_sink_name_goes_through_redact() -> None:
    if importlib.util.find_spec("paho") is None:
        pytest.skip("paho-mqtt is not installed")
    sink = MqttSink("mqtt://edge:Hunter2a@broker.example:1883/fleet/a")
    assert sink.name == "mqtt://broker.example:1883/fleet/a"

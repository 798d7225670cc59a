"""ONNX Runtime session options: ``spinning`` reaches both thread pools; bad values are one ConfigError."""

from __future__ import annotations

from typing import Any

import onnxruntime as ort
import pytest

from edgecv.backend import ConfigError
from edgecv_onnx.session import choose_providers, session_options

POOLS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


@pytest.mark.parametrize(("spinning", "entry"), [(False, "0"), (True, "1")])
def test_spinning_sets_both_pools(spinning: bool, entry: str) -> None:
    settings = session_options({"spinning": spinning})
    assert [settings.get_session_config_entry(key) for key in POOLS] == [entry, entry]


def test_default_leaves_onnx_runtime_alone() -> None:
    settings = session_options({})
    for key in POOLS:
        with pytest.raises(RuntimeError):  # no entry: ONNX Runtime's own default (spinning)
            settings.get_session_config_entry(key)
    assert settings.intra_op_num_threads == 0 and settings.inter_op_num_threads == 0


def test_threads() -> None:
    settings = session_options({"threads": 2, "inter_threads": 1})
    assert (settings.intra_op_num_threads, settings.inter_op_num_threads) == (2, 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"spinning": "false"}, "spinning must be true or false, got 'false'"),
        ({"spinning": 0}, "spinning must be true or false, got 0"),
        ({"inter_threads": "2"}, "inter_threads must be a positive integer"),
        ({"threads": 0}, "threads must be a positive integer"),
    ],
)
def test_bad_values(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        session_options(options)


@pytest.mark.parametrize("providers", [5, ["CPU", 1], {"CPU": {}}])
def test_providers_must_be_names(providers: Any) -> None:
    with pytest.raises(ConfigError, match="providers must be a name or a list of names"):
        choose_providers(providers)


def test_providers_by_short_name() -> None:
    assert choose_providers("CPU") == ["CPUExecutionProvider"] == choose_providers(["CPUExecutionProvider"])
    assert "CPUExecutionProvider" in ort.get_available_providers()

"""The input recipe an export records (``edgecv_input``) wins over the decoder's default, and
untrusted values that are not a recipe are ignored with a warning."""

from __future__ import annotations

import json

import pytest

from edgecv.spec import MetadataWarning, recipe_from_metadata


def test_recorded_recipe_is_read_from_json() -> None:
    recorded = {"name": "images", "dtype": "uint8", "layout": "NHWC", "color": "BGR", "scale": 1.0}
    recorded |= {"letterbox": "topleft", "pad_value": 0}
    assert recipe_from_metadata({"edgecv_input": json.dumps(recorded)}) == {
        "color": "BGR",
        "scale": 1.0,
        "letterbox": "topleft",
        "pad_value": 0,
    }


def test_partial_recipe_and_python_literal() -> None:
    assert recipe_from_metadata({"edgecv_input": "{'scale': 1}"}) == {"scale": 1.0}
    assert recipe_from_metadata({}) == {}


@pytest.mark.parametrize(
    "value",
    [
        '{"color": "GBR"}',
        '{"scale": 0}',
        '{"scale": true}',
        '{"scale": "1/255"}',
        '{"letterbox": "stretch"}',
        '{"pad_value": 300}',
        '{"pad_value": 1.5}',
        "[1, 2]",
        "not json",
    ],
)
def test_values_that_are_not_a_recipe_are_ignored_with_a_warning(value: str) -> None:
    with pytest.warns(MetadataWarning, match="edgecv_input"):
        assert recipe_from_metadata({"edgecv_input": value}) == {}

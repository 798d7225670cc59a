"""A .tflite whose output no decoder understands gives one ``error:`` line naming the fix.

Such a model is built with TensorFlow (from the ``edgecv-tflite[export]`` extra that ``make test``
installs), in a subprocess so that TensorFlow is never imported into the test process.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from edgecv.testing.cli import assert_one_line_error, run_edgecv

BUILD = """
import sys
import tensorflow as tf

@tf.function(input_signature=[tf.TensorSpec([1, 320, 320, 3], tf.float32)])
def pooled(images):
    # An image classifier's shape: one [1, 3] vector, not boxes.
    return tf.reduce_mean(images, axis=[1, 2])

converter = tf.lite.TFLiteConverter.from_concrete_functions([pooled.get_concrete_function()], pooled)
open(sys.argv[1], "wb").write(converter.convert())
"""


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None,
    reason="building the model needs tensorflow (pip install './plugins/edgecv-tflite[export]')",
)
def test_unsupported_output_layout(bus_path: Path, tmp_path: Path) -> None:
    model = tmp_path / "classifier.tflite"
    subprocess.run(
        [sys.executable, "-c", BUILD, str(model)],
        check=True,
        capture_output=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert_one_line_error(
        run_edgecv("predict", bus_path, "--model", model),
        "No decoder understands the output layout [1, 3]",
        "pass --arch NAME",
        "override edgecv_postprocess in a plugin",
    )

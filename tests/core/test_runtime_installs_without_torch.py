"""The runtime install never pulls torch or tensorflow: only edgecv-torch (and export extras) may.

Walks the installed dependency tree of every runtime package, without extras, through the
packages' own metadata (what pip would resolve), so a dependency that drags torch in fails here.
"""

from __future__ import annotations

import importlib.metadata
import re

import pytest
from packaging.requirements import Requirement

RUNTIME = (
    "edgecv-core",
    "edgecv-onnx",
    "edgecv-ncnn",
    "edgecv-tflite",
    "edgecv-tensorrt",
    "edgecv-hailo",
    "edgecv-openvino",
    "edgecv-opencv-dnn",
)
HEAVY = {"torch", "tensorflow", "tensorflow-cpu", "tf-keras", "jax"}


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def runtime_closure(root: str) -> dict[str, str]:
    """Every distribution ``root`` needs at run time (no extras), mapped to who asked for it."""
    wanted: dict[str, str] = {}
    queue = [root]
    while queue:
        current = queue.pop()
        try:
            requires = importlib.metadata.requires(current) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here (a platform-specific dependency): nothing to walk
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = _name(requirement.name)
            if name not in wanted:
                wanted[name] = current
                queue.append(name)
    return wanted


@pytest.mark.parametrize("package", RUNTIME)
def test_runtime_package_pulls_no_torch_or_tensorflow(package: str) -> None:
    closure = runtime_closure(package)
    assert "numpy" in closure or package == "edgecv-opencv-dnn"  # the walk really ran
    heavy = {name: by for name, by in closure.items() if name in HEAVY}
    assert not heavy, f"{package} pulls {heavy} (name: required by)"


def test_edgecv_torch_is_where_torch_lives() -> None:
    assert "torch" in runtime_closure("edgecv-torch")

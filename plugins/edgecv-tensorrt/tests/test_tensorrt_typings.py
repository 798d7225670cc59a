"""``typings/`` (what mypy reads for ``tensorrt``) is the installed ``tensorrt-stubs``, made parseable."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

TYPINGS = Path(__file__).resolve().parents[1] / "typings"


def regenerate_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("trt_typings_regenerate", TYPINGS / "regenerate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regenerate() -> ModuleType:
    try:
        importlib.metadata.distribution("tensorrt-stubs")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("tensorrt-stubs (a dev dependency, requirements-dev.txt) is not installed")
    return regenerate_module()


def test_the_copy_is_what_the_installed_stubs_give(regenerate: ModuleType) -> None:
    expected = regenerate.generate()
    for name, text in expected.items():
        have = (TYPINGS / name).read_text(encoding="utf-8")
        assert have == text, f"typings/{name} is stale: run python {TYPINGS / 'regenerate.py'}"


def test_the_copy_parses_and_keeps_the_runtime_api(regenerate: ModuleType) -> None:
    tree = ast.parse((TYPINGS / "tensorrt_bindings/tensorrt.pyi").read_text(encoding="utf-8"))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    methods = {
        name: {f.name for f in classes[name].body if isinstance(f, ast.FunctionDef)}
        for name in ("Runtime", "ICudaEngine", "IExecutionContext")
    }
    assert "deserialize_cuda_engine" in methods["Runtime"]
    assert {"get_tensor_name", "get_tensor_mode", "get_tensor_shape", "get_tensor_dtype"} <= methods[
        "ICudaEngine"
    ]
    assert {"set_input_shape", "set_tensor_address", "execute_async_v3"} <= methods["IExecutionContext"]


def test_only_the_documented_changes_are_made() -> None:
    module = regenerate_module()
    source = 'class A:\n    """doc\n    more"""\n    def f(self, in: list[int]) -> int:\n        """x"""\n'
    assert (
        module.parseable(source)
        == "class A:\n    ...\n    def f(self, in_: list[int]) -> int:\n        ...\n"
    )

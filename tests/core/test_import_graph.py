"""The kernel (load, pipeline, plugins) stands apart from the service (runtime, events, bench, evaluation).

The import graph is read from the source with ``ast``: every ``import`` of an ``edgecv`` module,
at module level or inside a function. Imports under ``if TYPE_CHECKING:`` never run, so they do
not make circles, but they still count for layering: the kernel's types must not come from the
service either.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import edgecv

PACKAGE_ROOT = Path(edgecv.__file__).parent
SERVICE = ("edgecv.runtime", "edgecv.events", "edgecv.bench", "edgecv.evaluation")
KERNEL = (
    "edgecv.hookspecs",
    "edgecv.plugins",
    "edgecv.model",
    "edgecv.defaults",
    "edgecv.preprocess",
    "edgecv.postprocess",
    "edgecv.decoders",
    "edgecv.backends",
    "edgecv.backend",
    "edgecv.spec",
    "edgecv.detections",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, typing_only: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, typing_only
        elif isinstance(child, ast.If) and _is_type_checking(child):
            for branch in child.body:
                yield from _imports_in(branch, True)
            for branch in child.orelse:
                yield from _imports_in(branch, typing_only)
        else:
            yield from _imports(child, typing_only)


def _imports_in(node: ast.AST, typing_only: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node, typing_only
    else:
        yield from _imports(node, typing_only)


def edges(known: dict[str, Path]) -> dict[str, dict[str, bool]]:
    """module -> {imported edgecv module: typing_only}."""
    graph: dict[str, dict[str, bool]] = {}
    for name, path in known.items():
        targets: dict[str, bool] = {}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, typing_only in _imports(ast.parse(path.read_text()), False):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                # ``from edgecv import plugins`` imports a module; ``from edgecv import hookimpl`` a name.
                found = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            for target in found:
                if target.startswith("edgecv") and target in known and target != name:
                    targets[target] = targets.get(target, True) and typing_only
        graph[name] = targets
    return graph


def cycles(graph: dict[str, dict[str, bool]]) -> list[list[str]]:
    """Strongly connected components of more than one module, over imports that run."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, typing_only in graph[node].items():
            if typing_only:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, bool]]:
    return edges(modules())


def in_group(module: str, group: tuple[str, ...]) -> bool:
    return any(module == g or module.startswith(g + ".") for g in group)


def test_the_graph_sees_known_imports(graph: dict[str, dict[str, bool]]) -> None:
    # Guards the walker itself: a module-level, a function-level and a TYPE_CHECKING import.
    assert graph["edgecv.model"]["edgecv.plugins"] is False
    assert "edgecv.registry" in graph["edgecv.model"]  # imported inside load()
    assert graph["edgecv.hookspecs"]["edgecv.model"] is True
    assert len(graph) > 60


def test_no_import_circle_among_core_modules(graph: dict[str, dict[str, bool]]) -> None:
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b": False}, "b": {"c": False}, "c": {"a": False}, "d": {"a": True}}) == [
        ["a", "b", "c"]
    ]
    assert cycles({"a": {"b": True}, "b": {"a": False}}) == []


def test_kernel_never_imports_the_service(graph: dict[str, dict[str, bool]]) -> None:
    offending = {
        f"{module} -> {target}"
        for module, targets in graph.items()
        if in_group(module, KERNEL)
        for target in targets
        if in_group(target, SERVICE)
    }
    assert offending == set()


@pytest.mark.parametrize(
    ("one", "other"), [("edgecv.runtime", "edgecv.bench"), ("edgecv.bench", "edgecv.runtime")]
)
def test_runtime_and_bench_do_not_import_each_other(
    graph: dict[str, dict[str, bool]], one: str, other: str
) -> None:
    offending = {
        f"{module} -> {target}"
        for module, targets in graph.items()
        if in_group(module, (one,))
        for target in targets
        if in_group(target, (other,))
    }
    assert offending == set()


def test_loading_and_predicting_imports_no_service_module(models: Path, bus_path: Path) -> None:
    code = (
        "import edgecv, sys; "
        f"m = edgecv.load({str(models / 'yolov8n_fp32_dequant.onnx')!r}); m({str(bus_path)!r}); "
        f"loaded = sorted(k for k in sys.modules if k.startswith({SERVICE!r})); "
        "assert not loaded, loaded; print(len(m(" + repr(str(bus_path)) + ")))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 5  # it really ran: five detections on bus.jpg


REPO = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = sorted([*REPO.glob("plugins/*/src"), *REPO.glob("examples/*/src")])


def core_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node, _ in _imports(ast.parse(path.read_text()), False):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        found.update(n for n in names if n == "edgecv" or n.startswith("edgecv."))
    return found


def test_the_plugins_are_found() -> None:
    assert {p.parent.name for p in PLUGIN_SOURCES} >= {"edgecv-onnx", "edgecv-ncnn", "edgecv-tflite"}
    assert any(p.parent.name == "edgecv-opencv-dnn" for p in PLUGIN_SOURCES)


TOOLS = {"edgecv-torch": {"commands.py", "report.py", "ptq.py", "distill.py"}}
"""Tools built on edgecv rather than backends: edgecv-torch's compression commands drive edgecv's
own measurement and data preparation (bench, val, calibration subsets, preprocessing) as the CLI
does. The backend modules of the same package keep to the front door."""


@pytest.mark.parametrize("source", PLUGIN_SOURCES, ids=lambda p: p.parent.name)
def test_plugins_import_only_the_front_door(source: Path) -> None:
    """A backend plugin uses ``edgecv.backend`` and the public ``edgecv`` API, nothing deeper."""
    tools = TOOLS.get(source.parent.name, set())
    offending = {
        f"{path.relative_to(source)}: {name}"
        for path in source.rglob("*.py")
        if path.name not in tools
        for name in core_imports(path)
        if name not in ("edgecv", "edgecv.backend")
    }
    assert offending == set()

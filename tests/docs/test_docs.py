"""The documentation keeps up with the code (in the spirit of Datasette's documentation tests).

- every hookspec, of the pipeline (``edgecv.hookspecs``) and of the service
  (``edgecv.runtime.hookspecs``), has a page ``docs/hooks/<name>.md`` with a section on its return
  value, and every page there belongs to a hook that still exists;
- the signature a page shows (its first ``python`` block: decorator and ``def`` line) is the
  hookspec's own: the same parameter names in the same order with the same annotations as
  written in the source, the same return annotation, and ``firstresult`` where the spec has it;
- every command of the ``edgecv`` click group is mentioned as ``edgecv <command>`` in README.md
  (read when the test runs, not at collection);
- every ``EDGECV_*`` environment variable named in a string of ``core/src`` is documented in
  docs/plugins.md.
"""

from __future__ import annotations

import ast
import copy
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest

from edgecv import hookspecs
from edgecv.cli import cli
from edgecv.runtime import hookspecs as runtime_hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOK_DOCS = ROOT / "docs" / "hooks"
README = ROOT / "README.md"
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
CORE_SOURCE = ROOT / "core" / "src"
HOOKSPEC_MODULES: tuple[ModuleType, ...] = (hookspecs, runtime_hookspecs)
SPEC_MARKER = f"{hookspecs.PROJECT_NAME}_spec"

ENV_VARIABLE = re.compile(r"EDGECV_[A-Z_]+")
# A Markdown heading (## ...) that talks about what the hook returns.
RETURN_HEADING = re.compile(r"^#{2,6}\s+.*\breturn", re.IGNORECASE | re.MULTILINE)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def hookspec_functions() -> dict[str, Callable[..., Any]]:
    """The functions marked ``@hookspec`` in both hookspec modules, by name."""
    found: dict[str, Callable[..., Any]] = {}
    for module in HOOKSPEC_MODULES:
        for name, value in vars(module).items():
            if hasattr(value, SPEC_MARKER) and value.__module__ == module.__name__:
                assert name not in found, f"{name} is specified in two hookspec modules"
                found[name] = value
    return found


def hook_names() -> list[str]:
    return sorted(hookspec_functions())


def hook_pages() -> list[str]:
    return sorted(page.stem for page in HOOK_DOCS.glob("*.md"))


def command_names() -> list[str]:
    return sorted(cli.list_commands(click.Context(cli)))


def environment_variables() -> list[str]:
    """``EDGECV_*`` names in the core's string literals (a Python name like ``EDGECV_VARIABLES`` is none)."""
    found: set[str] = set()
    for source in CORE_SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.update(ENV_VARIABLE.findall(node.value))
    return sorted(found)


def _canonical(function: ast.FunctionDef) -> str:
    """``function`` as one normalized text: decorators, ``def`` line, and ``...`` as the body."""
    bare = copy.copy(function)
    bare.body = [ast.Expr(ast.Constant(...))]
    return ast.unparse(ast.fix_missing_locations(bare))


def spec_text(name: str) -> str:
    """The hookspec ``name`` rendered from ``inspect.signature`` (annotations are the source's strings)."""
    function = hookspec_functions()[name]
    signature = inspect.signature(function)
    parts = []
    for parameter in signature.parameters.values():
        assert isinstance(parameter.annotation, str), f"{name}({parameter.name}) has no string annotation"
        assert parameter.kind is parameter.POSITIONAL_OR_KEYWORD and parameter.default is parameter.empty
        parts.append(f"{parameter.name}: {parameter.annotation}")
    returns = signature.return_annotation
    assert isinstance(returns, str), f"{name} has no string return annotation"
    options = getattr(function, SPEC_MARKER)
    decorator = "@hookspec(firstresult=True)" if options.get("firstresult") else "@hookspec"
    assert not options.get("historic"), "historic hookspecs need their own rendering here"
    source = f"{decorator}\ndef {name}({', '.join(parts)}) -> {returns}: ..."
    parsed = ast.parse(source).body[0]
    assert isinstance(parsed, ast.FunctionDef)
    return _canonical(parsed)


def page_text(page: Path) -> str:
    """The decorated ``def`` of the first ``python`` block of ``page``, normalized like ``spec_text``."""
    block = PYTHON_BLOCK.search(page.read_text(encoding="utf-8"))
    assert block is not None, f"{page.relative_to(ROOT)} shows no ```python block with the hook's signature"
    functions = [node for node in ast.parse(block.group(1)).body if isinstance(node, ast.FunctionDef)]
    assert len(functions) == 1, (
        f"the first python block of {page.relative_to(ROOT)} should hold exactly the hookspec's signature"
    )
    return _canonical(functions[0])


def test_there_is_something_to_check() -> None:
    # Guards the parametrized tests below against silently checking nothing.
    names = hook_names()
    assert "edgecv_infer" in names and "edgecv_on_result" in names, names  # both modules were read
    assert command_names(), "no commands registered on edgecv.cli.cli"
    assert environment_variables(), f"no EDGECV_* variables found under {CORE_SOURCE}"


def test_the_signature_rendering_is_faithful() -> None:
    # The comparison below is only as strong as this rendering: check it on a known hookspec.
    assert spec_text("edgecv_infer") == (
        "@hookspec(firstresult=True)\n"
        "def edgecv_infer(spec: ModelSpec, session: Session, tensor: npt.NDArray[Any]) -> Outputs | None:\n"
        "    ..."
    )


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_has_a_page(hook: str) -> None:
    page = HOOK_DOCS / f"{hook}.md"
    assert page.is_file(), f"hookspec {hook} has no documentation page: write {page.relative_to(ROOT)}"
    text = page.read_text(encoding="utf-8")
    assert hook in text.splitlines()[0], f"{page.relative_to(ROOT)} should start with a title naming {hook}"
    assert RETURN_HEADING.search(text), (
        f"{page.relative_to(ROOT)} has no section about what {hook} returns (e.g. '## Return value')"
    )


@pytest.mark.parametrize("hook", hook_names())
def test_every_page_shows_the_hookspec_signature(hook: str) -> None:
    page = HOOK_DOCS / f"{hook}.md"
    if not page.is_file():
        pytest.fail(f"hookspec {hook} has no documentation page: write {page.relative_to(ROOT)}")
    assert page_text(page) == spec_text(hook), (
        f"{page.relative_to(ROOT)} shows a signature that is not the hookspec's; "
        f"its first python block should read:\n{spec_text(hook)}"
    )


@pytest.mark.parametrize("page", hook_pages())
def test_every_page_has_a_hook(page: str) -> None:
    assert page in hook_names(), (
        f"docs/hooks/{page}.md documents a hook that neither edgecv.hookspecs nor "
        "edgecv.runtime.hookspecs has: remove or rename the page"
    )


@pytest.mark.parametrize("command", command_names())
def test_every_command_is_in_the_readme(command: str) -> None:
    if not README.is_file():
        pytest.fail(f"{README.relative_to(ROOT)} does not exist; it should show `edgecv {command}`")
    text = README.read_text(encoding="utf-8")
    assert re.search(rf"\bedgecv {re.escape(command)}\b", text), (
        f"`edgecv {command}` is not mentioned in README.md"
    )


@pytest.mark.parametrize("variable", environment_variables())
def test_every_environment_variable_is_documented(variable: str) -> None:
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    assert re.search(rf"\b{variable}\b", text), (
        f"{variable} is read in core/src but not documented in docs/plugins.md"
    )


WALKTHROUGH = ROOT / "docs" / "writing-a-backend.md"
CODE_BLOCK = re.compile(r"^```(?:python|toml)\n(.*?)^```", re.MULTILINE | re.DOTALL)
WALKTHROUGH_SOURCES = (
    ROOT / "examples" / "edgecv-opencv-dnn",
    ROOT / "core" / "src",
    ROOT / "plugins" / "edgecv-onnx" / "src",
)


def walkthrough_blocks() -> list[str]:
    return [block for block in CODE_BLOCK.findall(WALKTHROUGH.read_text()) if block.strip()]


def test_the_walkthrough_has_code_to_check() -> None:
    assert len(walkthrough_blocks()) >= 5


@pytest.mark.parametrize("index", range(len(walkthrough_blocks())))
def test_walkthrough_code_is_the_real_code(index: int) -> None:
    """Every code block of docs/writing-a-backend.md is copied from a real file, so it cannot rot."""
    block = walkthrough_blocks()[index]
    sources = [
        path.read_text()
        for folder in WALKTHROUGH_SOURCES
        for path in folder.rglob("*")
        if path.suffix in (".py", ".toml") and path.is_file()
    ]
    assert any(block in text for text in sources), f"block {index} is in no source file:\n{block}"

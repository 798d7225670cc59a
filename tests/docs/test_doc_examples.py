"""Every example in README.md and docs/**/*.md runs as printed, from the repository root, next to the assets.

Each fenced block is extracted and, by its language tag:

- ``bash``: every command runs in order, one ``bash -c`` each (a line ending in ``\\`` continues
  on the next; whole-line comments are skipped, trailing ones are the shell's). It must exit 0.
- ``console``: the same for the commands after a ``$ ``; the other lines are their output.
- ``python``: the block runs as a script (``python -c``) and must exit 0. A block whose first line
  names a file (``# drop_sink.py``) is that file, as the page tells the reader: it is saved
  under that name for the blocks after it to import, and only compiled itself.
- ``json`` must parse (an elided ``…`` element aside), ``toml`` must parse; ``text`` (outputs,
  synopses, diagrams) is shown, not run. An untagged block must not look like commands: tag it
  ``bash`` (it runs) or ``text`` (a synopsis).

Not run, each for a reason the reader can see:

- **Placeholders**: a command whose comment starts with ``placeholder`` (``edgecv run 0 --show
  # placeholder: camera 0 and a display``), and a python block whose first line is such a
  comment. They stand for what this machine does not have: a camera, a display, an RTSP stream,
  a Jetson, a fleet server. They are still compiled (python) or must start with ``edgecv``.
- **Set-up commands** (``make …``, ``pip install …``, ``python3 -m venv``, ``. .venv/bin/activate``):
  they build or change the environment this test runs in (``make test`` runs this very test).
  Their targets must exist in the Makefile; ``pip install`` lines are checked by
  tests/docs/test_packaging.py, and CI itself is ``make test`` in a fresh venv.
- **Hookspec signatures** (the first python block of a docs/hooks/ page) and the python
  **excerpts** of docs/writing-a-backend.md (a walkthrough of the example backend's code):
  tests/docs/test_docs.py checks that they are the hookspec's signature and copies of the real
  source.

"From the repository root" without writing into the repository: each page runs in a fresh
temporary folder ``<tmp>/repo`` whose entries are symbolic links to the repository's own (``core``,
``plugins``, ``Makefile``, …; ``.venv`` points at the environment running this test), beside
``<tmp>/shared/assets`` (a link to the assets). So ``../shared/assets/…``, ``plugins/…`` and
``.venv/bin/…`` resolve as in a checkout next to the assets, while outputs (``runs/…``,
``-o out.onnx``) land in the temporary folder. ``EDGECV_ASSETS`` is unset for the examples: they
find the assets at their default place, ``../shared/assets``. ``edgecv`` is the environment's own
(its ``bin`` first on ``PATH``). The blocks of a page run in page order and share that folder,
so a later block may use an earlier one's output. (An absolute output path a page prints, such as
``/tmp/art/…``, is written there.)

Every example runs, the long ones too: about 3-6 min on the 2-core development machine, most of
it the README's FP32-vs-INT8 comparison (INT8 exports of yolov8n, val, bench); CI's budget is 30
min. The CLI examples use the 320-pixel model and ``--calib-size 16`` to stay short.

Also here: docs/measuring.md's synopses of ``edgecv val`` and ``edgecv bench`` name every option.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from edgecv.cli import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pytest depends on tomli there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
PLACEHOLDER = re.compile(r"(?:^|\s)#\s*placeholder\b", re.IGNORECASE)
SAVED_FILE = re.compile(r"#\s*([A-Za-z_]\w*\.py)\s*$")
SETUP = re.compile(r"^(?:make\b|pip3? install\b|python3? -m (?:venv|pip)\b|\. |source )")
COMMAND_LIKE = re.compile(r"^(?:\$ |edgecv |pip |make |python3? )", re.MULTILINE)
# Top-level entries of the repository the temporary root does not link: outputs, caches, venvs.
NOT_LINKED = {"runs", "dist", "build", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
WALKTHROUGH = ROOT / "docs" / "writing-a-backend.md"
TIMEOUT_S = 900  # the longest examples (INT8/TFLite export, bench --data) take a few minutes


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT).as_posix()}:{self.line}"

    def __str__(self) -> str:  # the test id
        return f"{self.where}-{self.language or 'untagged'}"


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        language = match.group(1).strip().split(" ")[0]
        found.append(Block(page, text.count("\n", 0, match.start()) + 1, language, match.group(2)))
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def commands_of(block: Block) -> list[tuple[int, str]]:
    """The commands of a bash or console block: (line number, command with its continuations)."""
    commands: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for offset, raw in enumerate(block.text.splitlines()):
        number = block.line + 1 + offset
        line = raw.rstrip()
        if not pending:
            if block.language == "console":
                if not line.startswith("$ "):
                    continue  # the output of the command above
                line = line[2:]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = number
        pending.append(line)
        if not line.endswith("\\"):
            commands.append((start, "\n".join(pending)))
            pending = []
    assert not pending, f"{block.where}: the last command ends with a line continuation"
    return commands


def is_placeholder(command: str) -> bool:
    return bool(PLACEHOLDER.search(command))


def is_setup(command: str) -> bool:
    return bool(SETUP.match(command))


def is_signature(block: Block) -> bool:
    """The first python block of a docs/hooks/ page: the hookspec, checked by tests/docs/test_docs.py."""
    if block.page.parent != ROOT / "docs" / "hooks" or block.language != "python":
        return False
    first = next(b for b in ALL_BLOCKS if b.page == block.page and b.language == "python")
    return first == block and block.text.lstrip().startswith("@hookspec")


def is_excerpt(block: Block) -> bool:
    """A block of the walkthrough: tests/docs/test_docs.py checks it is copied from a source file."""
    return block.page == WALKTHROUGH


def saved_file(block: Block) -> str | None:
    """``drop_sink.py`` for a python block that starts with ``# drop_sink.py``."""
    first = block.text.splitlines()[0] if block.text.strip() else ""
    found = SAVED_FILE.fullmatch(first.strip())
    return found.group(1) if found and block.language == "python" else None


def python_placeholder(block: Block) -> bool:
    lines = block.text.strip().splitlines()
    return bool(lines) and bool(PLACEHOLDER.match(lines[0]))


def runnable(block: Block) -> bool:
    """Whether the test runs something of ``block``."""
    if block.language in ("bash", "console"):
        return any(not is_placeholder(c) and not is_setup(c) for _, c in commands_of(block))
    if block.language == "python":
        shown_only = is_signature(block) or saved_file(block) or python_placeholder(block)
        return not (shown_only or is_excerpt(block))
    return False


RUN_LANGUAGES = ("bash", "console", "python")
RUNNABLE = [block for block in ALL_BLOCKS if runnable(block)]
PYTHON = [block for block in ALL_BLOCKS if block.language == "python"]


# --- the temporary repository root -------------------------------------------------------------


_ROOTS: dict[Path, Path] = {}


def repository_root_for(page: Path, factory: pytest.TempPathFactory, assets: Path) -> Path:
    """The temporary repository root of ``page``, made on first use (see the module docstring)."""
    if page in _ROOTS:
        return _ROOTS[page]
    base = factory.mktemp(page.stem)
    root = base / "repo"
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED and not entry.name.startswith(".venv"):
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(Path(sys.prefix))
    (base / "shared").mkdir()
    (base / "shared" / "assets").symlink_to(assets)
    for block in ALL_BLOCKS:  # the files a page tells the reader to save, for its later blocks
        name = saved_file(block)
        if block.page == page and name:
            (root / name).write_text(block.text, encoding="utf-8")
    _ROOTS[page] = root
    return root


def example_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "EDGECV_ASSETS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    return env


def run(argv: list[str], cwd: Path, where: str, shown: str) -> str:
    """Run one example; a failure names its page and line and shows the end of its output."""
    started = time.monotonic()
    try:
        result = subprocess.run(
            argv, cwd=cwd, env=example_environment(), capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return f"{where}: did not finish within {TIMEOUT_S} s:\n{shown}"
    elapsed = time.monotonic() - started
    print(f"{where}: {elapsed:.1f} s  {shown.splitlines()[0][:100]}")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        return f"{where}: exit status {result.returncode} ({elapsed:.0f} s):\n{shown}\n--- output ---\n{tail}"
    return ""


# --- tests -------------------------------------------------------------------------------------


def test_there_are_examples_to_run() -> None:
    pages = {block.page.name for block in RUNNABLE}
    assert {"README.md", "measuring.md", "edgecv_event_sink.md"} <= pages, pages
    assert sum(block.language == "python" for block in RUNNABLE) >= 10
    assert sum(block.language in ("bash", "console") for block in RUNNABLE) >= 3


def test_the_extraction_is_faithful() -> None:
    readme = blocks_of(ROOT / "README.md")
    assert readme and all(block.text and not block.text.startswith("```") for block in readme)
    sample = Block(ROOT / "README.md", 1, "bash", "# set up\nedgecv a \\\n    --b  # why\n\nedgecv c\n")
    assert commands_of(sample) == [(3, "edgecv a \\\n    --b  # why"), (6, "edgecv c")]
    console = Block(ROOT / "README.md", 1, "console", "$ edgecv x\noutput\n$ edgecv y \\\n  z\n")
    assert commands_of(console) == [(2, "edgecv x"), (4, "edgecv y \\\n  z")]
    assert is_placeholder("edgecv run 0 --show  # placeholder: camera 0")
    assert not is_placeholder("edgecv run x.mp4  # not a placeholder")


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.language in ("bash", "console")], ids=str)
def test_commands_that_are_not_run_say_why(block: Block) -> None:
    """Placeholders are ``edgecv`` commands marked so; set-up ``make`` targets exist."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for number, command in commands_of(block):
        if is_placeholder(command):
            assert command.startswith("edgecv "), (
                f"{block.page.name}:{number}: only edgecv commands are placeholders"
            )
        elif command.startswith("make "):
            for target in shlex.split(command.split("#")[0])[1:]:
                if "=" not in target:
                    assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), (
                        f"{block.page.name}:{number}: the Makefile has no target {target!r}"
                    )
    if block.language == "console":
        assert commands_of(block), f"{block.where}: a console block without a `$ ` command: tag it text"


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.language not in RUN_LANGUAGES], ids=str)
def test_shown_blocks_are_well_formed(block: Block) -> None:
    if block.language == "json":
        json.loads(re.sub(r",\s*…(?=\s*[\]}])", "", block.text))
    elif block.language == "toml":
        tomllib.loads(block.text)
    elif block.language == "":
        assert not COMMAND_LIKE.search(block.text), (
            f"{block.where}: an untagged block that looks like commands: "
            "tag it bash (it runs) or text (a synopsis)"
        )
    else:
        assert block.language == "text", f"{block.where}: unknown language {block.language!r}"


@pytest.mark.parametrize("block", [b for b in PYTHON if saved_file(b) or python_placeholder(b)], ids=str)
def test_python_that_is_not_run_compiles(block: Block) -> None:
    """Placeholders and the files later blocks import are at least Python."""
    compile(block.text, block.where, "exec")


@pytest.mark.parametrize("block", RUNNABLE, ids=str)
def test_example_runs(block: Block, tmp_path_factory: pytest.TempPathFactory, assets: Path) -> None:
    root = repository_root_for(block.page, tmp_path_factory, assets)
    failures: list[str] = []
    if block.language == "python":
        failures.append(run([sys.executable, "-c", block.text], root, block.where, block.text))
    else:
        for number, command in commands_of(block):
            if is_placeholder(command) or is_setup(command):
                continue
            where = f"{block.page.relative_to(ROOT).as_posix()}:{number}"
            failures.append(run(["bash", "-o", "pipefail", "-c", command], root, where, command))
    failures = [failure for failure in failures if failure]
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("command", ["val", "bench"])
def test_the_measuring_synopsis_names_every_option(command: str) -> None:
    """docs/measuring.md's synopsis of ``edgecv val`` / ``edgecv bench`` shows each of its options."""
    synopsis = "\n".join(
        block.text
        for block in blocks_of(ROOT / "docs" / "measuring.md")
        if block.language == "text" and block.text.startswith(f"edgecv {command} ")
    )
    assert synopsis, f"docs/measuring.md has no text block with the synopsis of edgecv {command}"
    found = cli.get_command(click.Context(cli), command)
    assert found is not None
    options = [p for p in found.params if isinstance(p, click.Option) and "--help" not in p.opts]
    shown = [
        p for p in options if any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", synopsis) for o in p.opts)
    ]
    missing = [option.opts[-1] for option in options if option not in shown]
    assert not missing, f"the synopsis of edgecv {command} in docs/measuring.md lacks {missing}"

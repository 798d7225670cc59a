"""Every package of the repository is ready to publish, and its install lines work as printed.

`make dist` builds the wheels and runs `twine check --strict` on them (part of `make test`); these
checks cover what twine does not: the Makefile builds every package, each pyproject carries the
index page's metadata (README, classifiers, project URLs, one version), the wheels are typed, a
README renders on an index page (no links relative to the repository), and every `pip install`
line in the READMEs is valid for any shell (extras quoted) and finds edgecv's packages in `dist/`,
the only place they are published so far.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pytest depends on tomli there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = sorted(
    path.parent.relative_to(ROOT).as_posix()
    for pattern in ("core/pyproject.toml", "plugins/*/pyproject.toml", "examples/*/pyproject.toml")
    for path in ROOT.glob(pattern)
)
REQUIRED_CLASSIFIERS = {
    "Programming Language :: Python :: 3.10",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Programming Language :: Python :: 3.13",
    "Topic :: Scientific/Engineering :: Image Recognition",
    "Typing :: Typed",
}
REQUIRED_URLS = ("Homepage", "Documentation", "Issues", "Changelog")
VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.MULTILINE)
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
# A `pip install` command in a code block (up to its comment) or in inline code (up to the backtick).
PIP_INSTALL = re.compile(r"pip install [^`\n]*?(?=\s+#|`|$)", re.MULTILINE)


def project(package_dir: str) -> dict[str, Any]:
    with open(ROOT / package_dir / "pyproject.toml", "rb") as file:
        return tomllib.load(file)


def version_of(package_dir: str) -> Version:
    """The one version source: the file `[tool.hatch.version] path` names."""
    source = (ROOT / package_dir / project(package_dir)["tool"]["hatch"]["version"]["path"]).read_text()
    found = VERSION_LINE.findall(source)
    assert len(found) == 1, f"{package_dir}: expected one __version__ line, found {found}"
    return Version(found[0])


def package_readmes() -> list[Path]:
    return [ROOT / package_dir / "README.md" for package_dir in PACKAGE_DIRS]


def test_there_is_something_to_check() -> None:
    assert {"core", "plugins/edgecv-onnx", "examples/edgecv-opencv-dnn"} <= set(PACKAGE_DIRS)


def test_make_dist_builds_every_package() -> None:
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^PACKAGES := (.*)$", makefile, re.MULTILINE)
    assert listed, "Makefile has no PACKAGES list"
    assert sorted(listed.group(1).split()) == PACKAGE_DIRS
    assert re.search(r"^test:.*\bdist\b", makefile, re.MULTILINE), "make test does not run make dist"


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS)
def test_the_index_page_metadata_is_complete(package_dir: str) -> None:
    meta = project(package_dir)["project"]
    assert meta["readme"] == "README.md"
    assert meta["requires-python"] == ">=3.10"
    assert meta["dynamic"] == ["version"] and "version" not in meta
    # PEP 639: the SPDX expression replaces License :: classifiers, and PyPI refuses both at once.
    assert meta["license"] == "Apache-2.0"
    classifiers = set(meta["classifiers"])
    assert not [c for c in classifiers if c.startswith("License ::")]
    assert classifiers >= REQUIRED_CLASSIFIERS, REQUIRED_CLASSIFIERS - classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert any(c.startswith("Operating System ::") for c in classifiers)
    urls = meta["urls"]
    assert all(urls.get(name, "").startswith("https://") for name in REQUIRED_URLS), urls


def test_one_version_for_all_packages_and_their_core_requirement() -> None:
    """The packages are versioned together (CHANGELOG.md); each plugin accepts the core it ships with."""
    versions = {package_dir: version_of(package_dir) for package_dir in PACKAGE_DIRS}
    assert len(set(versions.values())) == 1, versions
    core_version = versions["core"]
    for package_dir in PACKAGE_DIRS:
        for dependency in project(package_dir)["project"].get("dependencies", []):
            requirement = Requirement(dependency)
            if requirement.name == "edgecv-core":
                assert core_version in requirement.specifier, (package_dir, dependency)


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS)
def test_every_wheel_package_is_typed(package_dir: str) -> None:
    wheel = project(package_dir)["tool"]["hatch"]["build"]["targets"]["wheel"]
    for package in wheel["packages"]:
        assert (ROOT / package_dir / package / "py.typed").is_file(), f"{package_dir}/{package}"


@pytest.mark.parametrize("readme", package_readmes(), ids=lambda path: path.parent.name)
def test_the_readme_is_an_index_page(readme: Path) -> None:
    """A real page (core's was one heading) whose links work on an index, away from the repository."""
    text = readme.read_text(encoding="utf-8")
    name = project(readme.parent.relative_to(ROOT).as_posix())["project"]["name"]
    assert text.startswith(f"# {name}\n")
    assert len([line for line in text.splitlines() if line.strip()]) >= 15
    assert f"pip install --find-links dist {name}" in text or f"edgecv-core {name}" in text
    relative = [link for link in MARKDOWN_LINK.findall(text) if not link.startswith(("https://", "#"))]
    assert not relative, f"links that only work inside the repository: {relative}"


def pip_install_lines() -> list[tuple[str, str]]:
    found = []
    for readme in [ROOT / "README.md", *package_readmes()]:
        for line in PIP_INSTALL.findall(readme.read_text(encoding="utf-8")):
            found.append((readme.relative_to(ROOT).as_posix(), line.strip()))
    return found


def test_there_are_install_lines_to_check() -> None:
    lines = [line for _, line in pip_install_lines()]
    assert "pip install --find-links dist edgecv-core edgecv-onnx" in lines


@pytest.mark.parametrize(("readme", "line"), pip_install_lines())
def test_every_install_line_works_as_printed(readme: str, line: str) -> None:
    """Extras are quoted (zsh globs an unquoted `[...]`) and edgecv's packages come from dist/."""
    unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", line)
    assert "[" not in unquoted, f"{readme}: unquoted extras in {line!r}"
    words = shlex.split(line)[2:]
    find_links = "--find-links" in words
    # Options whose value is a URL, not a requirement (the CPU-only torch wheel's index).
    values = {
        words[i + 1] for i, word in enumerate(words[:-1]) if word in ("--index-url", "--extra-index-url")
    }
    for word in words:
        if word.startswith("-") or word == "dist" or word.startswith(("./", "examples/", "plugins/", "core")):
            continue
        if word in values:
            continue
        try:
            requirement = Requirement(word)
        except InvalidRequirement as error:
            pytest.fail(f"{readme}: {word!r} in {line!r} is not a pip requirement: {error}")
        if requirement.name.startswith("edgecv"):
            assert find_links, f"{readme}: {line!r} installs {requirement.name}, which is only in dist/"

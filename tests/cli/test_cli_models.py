"""The embedded default model and ``edgecv models`` (issue 13, item 3).

A fresh install predicts with no --model, no assets, no cache and no network; ``edgecv models``
tells, for every name, where it resolves here (embedded, a mirror folder, the cache, a download)
or that it cannot, with its licence and size.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgecv
from edgecv import registry
from edgecv.testing.cli import assert_one_line_error, run_edgecv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pytest depends on tomli there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_BUS = [("bus", 0.909), ("person", 0.855), ("person", 0.806), ("person", 0.687)]  # SOURCES.md


def fresh_machine(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty working folder and an environment with no assets, no edgecv settings, an empty home.

    A proxy that refuses every connection stands in for "offline": a download would fail at once.
    """
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGECV_", "XDG_"))}
    env.update(
        HOME=str(home), EDGECV_DEBUG="0", http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9"
    )
    return work, env


def predict_json(work: Path, env: dict[str, str], *args: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "edgecv", "predict", "photo.jpg", "--json", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    detections: list[dict] = json.loads(result.stdout)["detections"]
    return detections


def test_predict_with_no_model_works_in_an_empty_folder_offline(
    tmp_path: Path, bus_path: Path, models: Path
) -> None:
    work, env = fresh_machine(tmp_path)
    shutil.copyfile(bus_path, work / "photo.jpg")
    default = predict_json(work, env)
    assert [(d["label"], round(d["score"], 2)) for d in default[:4]] == [
        (label, round(score, 2)) for label, score in EXPECTED_BUS
    ]
    # The embedded copy is the assets' yolox_nano.onnx, decoded as YOLOX: the same detections.
    assert default == predict_json(work, env, "--model", str(models / "yolox_nano.onnx"))
    assert sorted(p.name for p in work.iterdir()) == ["photo.jpg"]
    assert not any((tmp_path / "home").rglob("edgecv")), "nothing cached or downloaded"


def test_the_wheel_carries_the_default_model() -> None:
    """The repository's .gitignore leaves out *.onnx; hatch's artifacts bring this one back."""
    with open(ROOT / "core" / "pyproject.toml", "rb") as file:
        build = tomllib.load(file)["tool"]["hatch"]["build"]
    shipped = f"src/edgecv/models/{registry.BUILTIN[registry.DEFAULT_MODEL].file}"
    assert any(fnmatch.fnmatch(shipped, pattern) for pattern in build["artifacts"])
    assert (ROOT / "core" / shipped).is_file()
    assert (ROOT / "core" / "src" / "edgecv" / "models" / "NOTICE").is_file()


# --- edgecv models ------------------------------------------------------------------------------

PAYLOAD = b"a fleet model\n" * 10
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    """A mirror folder, a cache and a registry file with one name for each way a name resolves."""
    mirror, cache, no_assets = tmp_path / "mirror", tmp_path / "cache", tmp_path / "no-assets"
    for folder in (mirror, cache / "models", no_assets):
        folder.mkdir(parents=True)
    (mirror / "mirrored.bin").write_bytes(PAYLOAD)
    (mirror / "stale.bin").write_bytes(b"not the model")
    (cache / "models" / "cached.bin").write_bytes(PAYLOAD)
    entries = {
        "mirrored": {"file": "mirrored.bin", "sha256": PAYLOAD_SHA, "license": "MIT", "size": len(PAYLOAD)},
        "cached": {"file": "cached.bin", "sha256": PAYLOAD_SHA},
        "remote": {
            "file": "remote.bin",
            "sha256": PAYLOAD_SHA,
            "urls": ["https://fleet:s3cret@models.example/remote.bin?token=t0ken"],
        },
        "stale": {"file": "stale.bin", "sha256": PAYLOAD_SHA},  # the mirror's copy has another sha
        "nowhere": {"file": "nowhere.bin", "sha256": PAYLOAD_SHA, "description": "evil\x1b[2J\nname"},
    }
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(entries))
    return {
        "EDGECV_REGISTRY": str(path),
        "EDGECV_MODEL_DIR": str(mirror),
        "EDGECV_CACHE_DIR": str(cache),
        "EDGECV_ASSETS": str(no_assets),
    }


def test_models_json_says_where_each_name_resolves(places: dict[str, str]) -> None:
    result = run_edgecv("models", "--json", env=places)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["default"] == registry.DEFAULT_MODEL
    found = {m["name"]: m for m in report["models"]}
    assert report["models"][0]["name"] == registry.DEFAULT_MODEL  # listed first
    mirror, cache = Path(places["EDGECV_MODEL_DIR"]), Path(places["EDGECV_CACHE_DIR"])
    embedded = Path(edgecv.__file__).parent / "models" / "yolox_nano.onnx"
    where = {name: (m["source"], m["location"]) for name, m in found.items()}
    assert where["yolox-nano"] == ("embedded", str(embedded))
    assert where["mirrored"] == ("mirror", str(mirror / "mirrored.bin"))
    assert where["cached"] == ("cache", str(cache / "models" / "cached.bin"))
    assert where["remote"] == ("download", "https://models.example/remote.bin")
    assert where["stale"] == ("none", None)
    assert where["nowhere"] == ("none", None)
    # No assets here: the AGPL models have no public URL (yolov8n) or download from theirs.
    assert where["yolov8n"] == ("none", None) and where["yolo11n-320"] == ("none", None)
    assert where["yolov8n-int8"][0] == "download"
    assert found["yolox-nano"]["license"] == "Apache-2.0" and found["yolox-nano"]["size"] == 3_713_911
    assert found["yolox-nano"]["default"] and not found["mirrored"]["default"]
    assert found["yolov8n"]["license"] == "AGPL-3.0"
    assert (found["mirrored"]["license"], found["mirrored"]["size"]) == ("MIT", len(PAYLOAD))
    assert (found["cached"]["license"], found["cached"]["size"]) == (None, None)
    assert "s3cret" not in result.stdout and "t0ken" not in result.stdout
    assert list(Path(places["EDGECV_CACHE_DIR"], "models").iterdir()) == [cache / "models" / "cached.bin"]


def test_models_text_is_one_line_per_name_and_escapes_what_a_registry_says(places: dict[str, str]) -> None:
    result = run_edgecv("models", env=places)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if not line.startswith(" ")}
    assert "(default)" in lines["yolox-nano"] and "embedded" in lines["yolox-nano"]
    assert "Apache-2.0" in lines["yolox-nano"] and "3.7 MB" in lines["yolox-nano"]
    assert lines["nowhere"].endswith("not available here: no URL")
    assert lines["yolov8n"].endswith("not available here: no URL") and "AGPL-3.0" in lines["yolov8n"]
    assert lines["remote"].endswith("download from https://models.example/remote.bin")
    assert "mirror " in lines["mirrored"] and "cache " in lines["cached"]
    assert "licence unknown" in lines["cached"] and "size ?" in lines["cached"]
    assert "\x1b" not in result.stdout and "evil\\x1b[2J\\nname" in result.stdout
    assert "s3cret" not in result.stdout and "t0ken" not in result.stdout


def test_models_with_a_bad_registry_is_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"x": {"file": "x.bin", "sha256": PAYLOAD_SHA, "license": ["MIT"]}}))
    assert_one_line_error(
        run_edgecv("models", env={"EDGECV_REGISTRY": str(path)}), "entry 'x'", "'license' must be a string"
    )


def test_a_name_without_a_source_points_to_edgecv_models(tmp_path: Path, bus_path: Path) -> None:
    env = {"EDGECV_ASSETS": str(tmp_path), "EDGECV_CACHE_DIR": str(tmp_path / "cache")}
    assert_one_line_error(
        run_edgecv("predict", bus_path, "--model", "yolov8n", env=env), "no download URL", "edgecv models"
    )

"""The engine cache and the sidecar check, on the fake TensorRT (tests/trt_fakes.py + trt_fake_builder.py).

- Identical requests reuse the cached engine without building; each field the engine depends on
  (model bytes, TensorRT version, GPU name, compute capability, precision, input shape, build
  options, edgecv versions) forces a build of its own.
- A damaged cache entry (truncated engine, missing or garbage sidecar) is built again.
- An engine from another TensorRT version, GPU or compute capability, one without a sidecar or
  with an unreadable one, and one whose bytes changed, are refused with one ``ModelError`` line
  saying where it was built and how to rebuild it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trt_fakes
from trt_fake_builder import dynamic_onnx, fake_builder, with_metadata

import edgecv
import edgecv_tensorrt
from edgecv.backend import ModelError, read_image
from edgecv.testing.progress import RecordedProgress
from edgecv_tensorrt import cache
from edgecv_tensorrt.plan import BuildRequest, plan
from edgecv_tensorrt.runtime import MachineInfo
from edgecv_tensorrt.session import TensorRTSession
from edgecv_tensorrt.sidecar import check_engine, read_sidecar, sidecar_path, write_engine


def fake(version: str = "10.3.0", gpu: str = trt_fakes.FAKE_GPU, capability: str = "8.7") -> ModuleType:
    return trt_fakes.fake_tensorrt(version, builder=fake_builder, cuda=trt_fakes.FakeCuda(gpu, capability))


@pytest.fixture(scope="module")
def source(models: Path) -> Path:
    return models / "yolo11n_320_fp32_dequant.onnx"


def engine_for(trt: ModuleType, model: Path, root: Path, **options: Any) -> Path:
    return cache.engine_for(model, options, trt, trt_fakes.fake_machine(trt), root=root)


def test_identical_requests_reuse_the_engine(source: Path, tmp_path: Path) -> None:
    trt = fake()
    progress = RecordedProgress()
    first = cache.engine_for(
        source, {"precision": "fp16"}, trt, trt_fakes.fake_machine(trt), progress, root=tmp_path
    )
    built = first.stat().st_mtime_ns
    stages = [stage for stage, *_ in progress.stages]
    assert stages[:2] == ["parsing the ONNX", "building the TensorRT 10.3.0 engine (fp16)"]
    assert str(stages[-1]).startswith("engine built in ")  # the build time, on the terminal
    again = RecordedProgress()
    second = cache.engine_for(
        source, {"precision": "fp16"}, trt, trt_fakes.fake_machine(trt), again, root=tmp_path
    )
    assert second == first and len(trt.builds) == 1
    assert again.stages == []  # nothing built, nothing to report
    assert second.stat().st_mtime_ns == built
    assert read_sidecar(first).build_seconds is not None
    assert first.parent == tmp_path / "engines"


@pytest.fixture
def dynamic_model(source: Path, tmp_path: Path) -> Path:
    return dynamic_onnx(source, tmp_path / "dynamic.onnx")


# What changes between the first and the second request: one sidecar field each.
CHANGES = {
    "model sha256": lambda env: {
        "model": with_metadata(env["model"], env["tmp"] / "renamed.onnx", author="x")
    },
    "TensorRT version": lambda env: {"trt": fake("10.3.1")},
    "GPU name": lambda env: {"trt": fake(gpu="Jetson AGX Orin (fake)")},
    "compute capability": lambda env: {"trt": fake(capability="8.6")},
    "precision": lambda env: {"options": {"precision": "fp16"}},
    "input shape": lambda env: {"options": {"imgsz": 256}},
    "workspace": lambda env: {"options": {"workspace": 2}},
    "dynamic": lambda env: {"options": {"dynamic": True}},
}


@pytest.mark.parametrize("change", CHANGES)
def test_each_key_field_forces_a_rebuild(change: str, dynamic_model: Path, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    trt = fake()
    first = engine_for(trt, dynamic_model, root)
    env = {"model": dynamic_model, "tmp": tmp_path}
    changed = {"model": dynamic_model, "trt": trt, "options": {}, **CHANGES[change](env)}
    other: ModuleType = changed["trt"]
    count = len(other.builds)
    second = engine_for(other, changed["model"], root, **changed["options"])
    assert len(other.builds) == count + 1, f"a different {change} reused the cached engine"
    assert second != first and first.is_file()  # the first engine is still there for its requests
    assert engine_for(other, changed["model"], root, **changed["options"]) == second
    assert len(other.builds) == count + 1  # and the second is reused in turn


@pytest.mark.parametrize("field", ("edgecv_version", "plugin_version"))
def test_an_edgecv_upgrade_forces_a_rebuild(
    field: str, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trt = fake()
    first = engine_for(trt, source, tmp_path)
    monkeypatch.setattr(edgecv if field == "edgecv_version" else edgecv_tensorrt, "__version__", "0.2.99")
    second = engine_for(trt, source, tmp_path)
    assert second != first and len(trt.builds) == 2
    assert getattr(read_sidecar(second), field) == "0.2.99"


@pytest.mark.parametrize("damage", ("truncated engine", "no sidecar", "garbage sidecar", "other sidecar"))
def test_a_damaged_cache_entry_is_built_again(damage: str, source: Path, tmp_path: Path) -> None:
    trt = fake()
    engine = engine_for(trt, source, tmp_path)
    other = engine_for(trt, source, tmp_path, precision="fp16")
    if damage == "truncated engine":
        engine.write_bytes(engine.read_bytes()[:100])
    elif damage == "no sidecar":
        sidecar_path(engine).unlink()  # as a crash between the engine's write and its sidecar's
    elif damage == "garbage sidecar":
        sidecar_path(engine).write_text("{not json")
    else:
        sidecar_path(engine).write_bytes(sidecar_path(other).read_bytes())
    assert engine_for(trt, source, tmp_path) == engine
    assert len(trt.builds) == 3
    check_engine(engine, trt_fakes.fake_machine(trt))  # whole again


def test_the_timing_cache_carries_over_to_the_next_build(source: Path, tmp_path: Path) -> None:
    trt = fake()
    engine_for(trt, source, tmp_path)
    engine_for(trt, source, tmp_path, precision="fp16")
    assert trt.builds[0]["timing_cache_entries"] == 0
    assert trt.builds[1]["timing_cache_entries"] > 0  # read back from tensorrt/timing/
    # A timing cache TensorRT did not write is ignored, not a failure.
    (timing,) = (tmp_path / "timing").iterdir()
    timing.write_bytes(b"garbage")
    engine_for(trt, source, tmp_path, workspace=1)
    assert trt.builds[2]["timing_cache_entries"] == 0


def test_engines_go_under_the_edgecv_cache_dir(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGECV_CACHE_DIR", str(tmp_path / "edgecv-cache"))
    trt = fake()
    engine = cache.engine_for(source, {}, trt, trt_fakes.fake_machine(trt))
    assert engine.parent == tmp_path / "edgecv-cache" / "tensorrt" / "engines"


# --- refused engines -------------------------------------------------------------------------------


@pytest.fixture
def built(source: Path, tmp_path: Path) -> Path:
    """An engine (+ sidecar) built by ``edgecv export`` on the fake TensorRT 10.3.0 / Orin."""
    from edgecv_tensorrt import export

    trt = fake()
    target = tmp_path / "yolo11n.engine"
    return export.export(
        source,
        target,
        {"precision": "fp16"},
        trt=trt,
        machine=trt_fakes.fake_machine(trt),
        cache_root=tmp_path,
    )


@pytest.mark.parametrize(
    ("machine", "where"),
    [
        (MachineInfo("10.4.0", trt_fakes.FAKE_GPU, "8.7"), "this machine has TensorRT 10.4.0 on Orin (fake)"),
        (MachineInfo("10.3.0", "NVIDIA RTX 4090", "8.9"), "on NVIDIA RTX 4090 (compute capability 8.9)"),
        (MachineInfo("10.3.0", trt_fakes.FAKE_GPU, "8.6"), "on Orin (fake) (compute capability 8.6)"),
    ],
    ids=["TensorRT version", "GPU", "compute capability"],
)
def test_a_foreign_engine_is_refused_with_where_it_was_built(
    built: Path, machine: MachineInfo, where: str
) -> None:
    with pytest.raises(ModelError) as raised:
        check_engine(built, machine)
    message = str(raised.value)
    assert "\n" not in message
    assert "yolo11n.engine was built with TensorRT 10.3.0 for Orin (fake) (compute capability 8.7)" in message
    assert where in message
    rebuild = (
        "Rebuild it here: edgecv export --model yolo11n_320_fp32_dequant.onnx --to tensorrt --precision fp16 "
        f"-o {built}"
    )
    assert rebuild in message


def test_a_foreign_engine_is_refused_before_tensorrt_reads_it(built: Path) -> None:
    """Loaded on a machine with another TensorRT: the sidecar says so, the engine is never deserialized."""
    trt = trt_fakes.fake_tensorrt("10.4.0")
    with pytest.raises(ModelError, match=r"was built with TensorRT 10\.3\.0"):
        TensorRTSession.open(built, {}, trt=trt, cuda=trt.fake_cuda)
    assert trt.fake_cuda.allocations == 0


@pytest.mark.parametrize(
    ("sidecar", "said"),
    [
        (None, "has no sidecar yolo11n.engine.json"),
        (b"{broken", "is not a readable edgecv TensorRT sidecar"),
        (b'{"format": "something-else"}', "not an edgecv-tensorrt-engine sidecar"),
        (b"[" * (5 << 20), "larger than"),
        ("wrong type", "input_shape is not a list of integers"),
    ],
    ids=["missing", "not JSON", "foreign JSON", "too large", "wrong field type"],
)
def test_an_engine_without_a_readable_sidecar_is_refused(
    built: Path, sidecar: bytes | str | None, said: str
) -> None:
    path = sidecar_path(built)
    if sidecar is None:
        path.unlink()
    elif isinstance(sidecar, str):
        fields = json.loads(path.read_text())
        fields["input_shape"] = "1x3x320x320"
        path.write_text(json.dumps(fields))
    else:
        path.write_bytes(sidecar)
    with pytest.raises(ModelError) as raised:
        check_engine(built, trt_fakes.fake_machine(fake()))
    message = str(raised.value)
    assert "\n" not in message and said in message
    assert "Rebuild the engine on this machine with edgecv export --to tensorrt" in message


def test_an_engine_changed_after_its_build_is_refused(built: Path) -> None:
    data = bytearray(built.read_bytes())
    data[-10] ^= 0xFF  # one byte of the weights
    built.write_bytes(bytes(data))
    with pytest.raises(ModelError) as raised:
        check_engine(built, trt_fakes.fake_machine(fake()))
    assert "\n" not in str(raised.value)
    assert "yolo11n.engine is not the engine its sidecar describes" in str(raised.value)


def test_a_corrupt_engine_with_a_matching_sidecar_fails_to_deserialize_in_one_line(built: Path) -> None:
    write_engine(built, b"\x00" * 4096, read_sidecar(built))  # the sidecar vouches for these bytes
    trt = fake()
    with pytest.raises(ModelError) as raised:
        TensorRTSession.open(built, {}, trt=trt, cuda=trt.fake_cuda)
    assert "\n" not in str(raised.value)
    assert "TensorRT 10.3.0 cannot deserialize yolo11n.engine" in str(raised.value)


def test_engine_and_sidecar_are_written_atomically(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while writing leaves no partial file, and never the old sidecar beside a new engine."""
    sidecar = read_sidecar(built)

    def fail(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_engine(built, b"new engine", sidecar)
    assert sorted(p.name for p in built.parent.iterdir() if p.name.startswith("yolo11n")) == [
        "yolo11n.engine"
    ]
    assert not sidecar_path(built).exists()  # refused ("no sidecar") rather than mismatched


def test_loading_an_onnx_builds_once_then_reuses_the_engine(
    source: Path, bus_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``edgecv.load(x.onnx, backend="tensorrt")``: the session asks the cache, which builds only once;
    the fake computes the fp16-flag engine in float32, so its boxes are the ONNX backend's."""
    trt = trt_fakes.install_fakes(monkeypatch, "10.3.0", builder=fake_builder)
    first = edgecv.load(source, backend="tensorrt", precision="fp16")
    second = edgecv.load(source, backend="tensorrt", precision="fp16")
    assert len(trt.builds) == 1
    reference = edgecv.load(source, backend="onnx")
    image = read_image(bus_path)
    try:
        for model in (first, second):
            ours, theirs = model.predict(image), reference.predict(image)
            assert [d.label for d in ours] == [d.label for d in theirs]
            for mine, expected in zip(ours, theirs, strict=True):
                assert max(abs(a - b) for a, b in zip(mine.box, expected.box, strict=True)) <= 1.0
    finally:
        for model in (first, second, reference):
            model.close()


def test_an_int8_engine_is_reused_without_calibrating_again(
    source: Path, assets: Path, tmp_path: Path
) -> None:
    """The key holds what calibrated it (folder, count, the images' bytes): checking it reads the
    images, never runs them; another count of images is another engine."""
    trt = fake()
    calib = assets / "coco128" / "images" / "train2017"
    options = {"precision": "int8", "calib": str(calib), "calib_size": 2, "calib_method": "minmax"}
    first = engine_for(trt, source, tmp_path, **options)
    progress = RecordedProgress()
    machine = trt_fakes.fake_machine(trt)
    assert cache.engine_for(source, options, trt, machine, progress, root=tmp_path) == first
    assert len(trt.builds) == 1 and progress.stages == []
    assert read_sidecar(first).build_options["calibration"]["size"] == 2
    three = plan(source, BuildRequest.from_options({**options, "calib_size": 3}), machine)
    assert cache.engine_path(tmp_path, three) != first  # planned, not built: calibrating takes seconds

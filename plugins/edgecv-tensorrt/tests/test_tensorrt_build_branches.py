"""``edgecv export --to tensorrt`` on the fake builder (tests/trt_fake_builder.py) of TensorRT 8.6, 10, 11.

The fake builder follows the real API and its rules (8.6's parser needs an explicit-batch network,
11 has no ``BuilderFlag.FP16``/``INT8``, precision flags fail on strongly typed networks, Q/DQ must
be symmetric int8...), records every build (``trt.builds``: the engine header and the ONNX it
parsed), so these tests check which branch each version takes and what TensorRT was given.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest
import trt_fakes
from onnx import numpy_helper
from trt_fake_builder import dynamic_onnx, fake_builder, zero_points

from edgecv.backend import BackendError, ConfigError, ModelError
from edgecv.testing.progress import RecordedProgress
from edgecv_tensorrt import export
from edgecv_tensorrt.build import BuildConfig, Profile, build_engine
from edgecv_tensorrt.runtime import EngineRunner
from edgecv_tensorrt.sidecar import check_engine, read_sidecar
from edgecv_tensorrt.versions import TensorRTVersion

VERSIONS = ("8.6.1", "10.3.0", "11.4.0")
WEAKLY_TYPED = ("8.6.1", "10.3.0")
CALIB_SIZE = 2  # the wiring is under test here, not INT8 accuracy


def fake(version: str) -> ModuleType:
    return trt_fakes.fake_tensorrt(version, builder=fake_builder)


@pytest.fixture(scope="module")
def source(models: Path) -> Path:
    return models / "yolo11n_320_fp32_dequant.onnx"


@pytest.fixture(scope="module")
def calib(assets: Path) -> Path:
    return assets / "coco128" / "images" / "train2017"


@pytest.fixture(scope="module")
def onnxruntime_qdq(tmp_path_factory: pytest.TempPathFactory, source: Path, calib: Path) -> Path:
    """edgecv-onnx's own INT8 export (onnxruntime static QDQ: uint8 activations, int8 weights)."""
    from edgecv_onnx.export import export as onnx_export

    target = tmp_path_factory.mktemp("qdq") / "yolo11n_int8_qdq.onnx"
    options = {"precision": "int8", "calib": calib, "calib_size": CALIB_SIZE, "calib_method": "minmax"}
    return onnx_export(source, target, options)


def build(
    trt: ModuleType, source: Path, output: Path, cache: Path, **options: object
) -> tuple[Path, dict[str, object]]:
    """Export through the fake; the engine path and the build the fake recorded."""
    count = len(trt.builds)
    engine = export.export(
        source,
        output,
        {"precision": "fp32", **options},
        trt=trt,
        machine=trt_fakes.fake_machine(trt),
        cache_root=cache,
    )
    assert len(trt.builds) == count + 1
    return engine, trt.builds[-1]


def parsed(record: dict[str, object]) -> onnx.ModelProto:
    data = record["onnx"]
    assert isinstance(data, bytes)
    return onnx.load_from_string(data)


def io_types(model: onnx.ModelProto) -> set[int]:
    return {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}


@pytest.mark.parametrize("version", VERSIONS)
def test_fp32_parses_the_onnx_as_given(version: str, source: Path, tmp_path: Path) -> None:
    trt = fake(version)
    engine, record = build(trt, source, tmp_path / "model.engine", tmp_path / "cache", workspace=1.5)
    assert engine == tmp_path / "model.engine"
    assert record["onnx"] == source.read_bytes()  # 8.6: parsed only because EXPLICIT_BATCH was set
    assert record["precision"] == "fp32"
    assert record["flags"] == []
    assert record["strongly_typed"] is TensorRTVersion.parse(version).strongly_typed
    assert record["workspace"] == int(1.5 * (1 << 30))
    sidecar = check_engine(engine, trt_fakes.fake_machine(trt))  # built here: accepted
    assert (sidecar.trt_version, sidecar.precision, sidecar.input_shape) == (
        version,
        "fp32",
        (1, 3, 320, 320),
    )
    assert sidecar.build_options["workspace"] == record["workspace"]
    assert sidecar.build_options["onnx"] == "as given"
    assert sidecar.metadata["names"].startswith("{0: 'person'")


@pytest.mark.parametrize("version", WEAKLY_TYPED)
def test_fp16_on_86_and_10_is_the_builder_flag(version: str, source: Path, tmp_path: Path) -> None:
    trt = fake(version)
    _, record = build(trt, source, tmp_path, tmp_path / "cache", precision="fp16")
    assert record["flags"] == ["FP16"]
    assert record["strongly_typed"] is False
    assert record["precision"] == "fp16"
    assert record["onnx"] == source.read_bytes()  # the float32 ONNX: TensorRT picks half kernels


def test_fp16_on_11_builds_an_fp16_onnx_strongly_typed(source: Path, tmp_path: Path) -> None:
    trt = fake("11.4.0")
    assert not hasattr(trt.BuilderFlag, "FP16")  # as in the real 11: the flag is gone
    engine, record = build(trt, source, tmp_path, tmp_path / "cache", precision="fp16")
    assert engine.name == "yolo11n_320_fp32_dequant_fp16.engine"
    assert record["flags"] == [] and record["strongly_typed"] is True
    assert record["precision"] == "fp16"  # the fake reads it from the network's own types
    model = parsed(record)
    weights = {t.data_type for t in model.graph.initializer if t.dims and np.prod(t.dims) > 64}
    assert onnx.TensorProto.FLOAT16 in weights
    assert io_types(model) == {onnx.TensorProto.FLOAT}  # engine I/O stays float32
    # The box-decoding tail stays float32: the graph casts back to float before the head.
    assert any(n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT for n in model.graph.node)
    assert read_sidecar(engine).build_options["onnx"] == "edgecv-onnx fp16"


@pytest.mark.parametrize("version", WEAKLY_TYPED)
def test_weak_typing_flags_are_never_set_on_11(version: str, source: Path, tmp_path: Path) -> None:
    """What 8.6/10 get as a flag, 11 gets in the ONNX: the same request on 11 sets no flag."""
    _, weak = build(fake(version), source, tmp_path / "a.engine", tmp_path / "cache", precision="fp16")
    _, strong = build(fake("11.4.0"), source, tmp_path / "b.engine", tmp_path / "cache", precision="fp16")
    assert weak["flags"] == ["FP16"] and strong["flags"] == []
    assert weak["precision"] == strong["precision"] == "fp16"


def test_int8_with_calib_feeds_edgecv_onnx_qdq_to_the_builder(
    source: Path, calib: Path, tmp_path: Path
) -> None:
    trt = fake("10.3.0")
    progress = RecordedProgress()
    engine, record = build(
        trt,
        source,
        tmp_path,
        tmp_path / "cache",
        precision="int8",
        calib=calib,
        calib_size=CALIB_SIZE,
        calib_method="minmax",
        progress=progress,
    )
    assert record["flags"] == ["INT8"] and record["precision"] == "int8"
    model = parsed(record)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    points = zero_points(model)
    assert points and all(p.data_type == onnx.TensorProto.INT8 for p in points)  # symmetric int8 only
    assert not any(numpy_helper.to_array(p).any() for p in points)
    stages = [stage for stage, *_ in progress.stages]
    assert "calibrating: ranges" in stages  # edgecv-onnx's own stages, through the same progress
    assert stages[-3:-1] == ["parsing the ONNX", "building the TensorRT 10.3.0 engine (int8)"]
    assert str(stages[-1]).startswith("engine built in ")
    calibration = read_sidecar(engine).build_options["calibration"]
    assert calibration["size"] == CALIB_SIZE and calibration["folder"] == str(calib.resolve())
    assert read_sidecar(engine).build_options["onnx"] == "edgecv-onnx int8"


@pytest.mark.parametrize("version", ("8.6.1", "11.4.0"))
def test_int8_from_a_qdq_onnx_needs_no_calib(version: str, onnxruntime_qdq: Path, tmp_path: Path) -> None:
    trt = fake(version)
    engine, record = build(trt, onnxruntime_qdq, tmp_path, tmp_path / "cache", precision="int8")
    assert record["precision"] == "int8"
    assert record["flags"] == ([] if version == "11.4.0" else ["INT8"])
    model = parsed(record)
    # onnxruntime's uint8 activations, rewritten as symmetric int8 (TensorRT's parser refuses uint8).
    assert all(p.data_type == onnx.TensorProto.INT8 for p in zero_points(model))
    original = onnx.load(str(onnxruntime_qdq))
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) == sum(
        n.op_type == "QuantizeLinear" for n in original.graph.node
    )
    # The engine runs (the fake computes it with ONNX Runtime: a mistyped graph would not load).
    runner = EngineRunner(trt, trt.fake_cuda, engine.read_bytes(), name=engine.name)
    try:
        (output,) = runner.execute(np.full((1, 3, 320, 320), 0.5, dtype=np.float32))
        assert output.shape == (1, 84, 2100) and np.isfinite(output).all()
    finally:
        runner.close()


def test_a_symmetric_int8_qdq_onnx_is_parsed_byte_for_byte(onnxruntime_qdq: Path, tmp_path: Path) -> None:
    trt = fake("10.3.0")
    _, first = build(trt, onnxruntime_qdq, tmp_path / "a.plan", tmp_path / "cache", precision="int8")
    symmetric = tmp_path / "symmetric.onnx"
    symmetric.write_bytes(first["onnx"])  # type: ignore[arg-type]
    _, second = build(trt, symmetric, tmp_path / "b.plan", tmp_path / "cache", precision="int8")
    assert second["onnx"] == symmetric.read_bytes()


def test_the_parser_refuses_uint8_qdq_as_tensorrt_does(onnxruntime_qdq: Path) -> None:
    """Why the build rewrites onnxruntime's Q/DQ: given as is, TensorRT cannot parse it."""
    config = BuildConfig("int8", "images", (1, 3, 320, 320))
    with pytest.raises(ModelError) as raised:
        build_engine(fake("10.3.0"), onnxruntime_qdq, config, RecordedProgress())
    assert "\n" not in str(raised.value)
    assert "cannot parse yolo11n_int8_qdq.onnx" in str(raised.value)
    assert "TensorRT only supports INT8 quantization" in str(raised.value)


@pytest.mark.parametrize("precision", ("int8", "fp16"))
def test_a_precision_the_onnx_cannot_take_is_refused(
    precision: str, source: Path, onnxruntime_qdq: Path, tmp_path: Path
) -> None:
    trt = fake("10.3.0")
    # A float32 ONNX as int8 without --calib; a Q/DQ ONNX as fp16.
    model = source if precision == "int8" else onnxruntime_qdq
    with pytest.raises(ConfigError) as raised:
        build(trt, model, tmp_path, tmp_path / "cache", precision=precision)
    message = str(raised.value)
    assert "\n" not in message
    assert ("--calib DIR" in message) if precision == "int8" else ("Pass --precision int8" in message)
    assert trt.builds == []


def test_dynamic_builds_a_min_opt_max_profile(source: Path, tmp_path: Path) -> None:
    trt = fake("10.3.0")
    model = dynamic_onnx(source, tmp_path / "dynamic.onnx")
    engine, record = build(trt, model, tmp_path, tmp_path / "cache", dynamic=True, imgsz=320)
    profile = {"min": [1, 3, 32, 32], "opt": [1, 3, 320, 320], "max": [1, 3, 320, 320]}
    assert record["profile"] == profile
    sidecar = read_sidecar(engine)
    assert sidecar.build_options["profile"] == profile and sidecar.build_options["dynamic"] is True
    assert "--dynamic" in sidecar.rebuild_command(engine)


def test_a_dynamic_onnx_without_dynamic_gets_one_fixed_shape(source: Path, tmp_path: Path) -> None:
    trt = fake("8.6.1")
    model = dynamic_onnx(source, tmp_path / "dynamic.onnx")
    # No --imgsz: the size the model declares (metadata imgsz [320, 320]).
    _, record = build(trt, model, tmp_path, tmp_path / "cache")
    assert record["profile"] == {"min": [1, 3, 320, 320], "opt": [1, 3, 320, 320], "max": [1, 3, 320, 320]}


def test_dynamic_on_a_fixed_size_onnx_is_refused(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fixed input size"):
        build(fake("10.3.0"), source, tmp_path, tmp_path / "cache", dynamic=True)


def test_a_parse_error_is_one_model_error_line_with_the_parsers_words(models: Path) -> None:
    # onnxruntime's dynamic quantization (DynamicQuantizeLinear, ConvInteger): no TensorRT importer.
    config = BuildConfig("fp32", "images", (1, 3, 320, 320))
    with pytest.raises(ModelError) as raised:
        build_engine(fake("10.3.0"), models / "yolo11n_320_int8.onnx", config, RecordedProgress())
    message = str(raised.value)
    assert "\n" not in message
    assert "TensorRT 10.3.0 cannot parse yolo11n_320_int8.onnx" in message
    assert "No importer registered for op: DynamicQuantizeLinear" in message


def test_a_failed_build_is_one_backend_error_line(source: Path, tmp_path: Path) -> None:
    """``build_serialized_network`` returning ``None``: here a dynamic input without a profile."""
    model = dynamic_onnx(source, tmp_path / "dynamic.onnx")
    config = BuildConfig("fp32", "images", (1, 3, 320, 320), profile=None)
    with pytest.raises(BackendError) as raised:
        build_engine(fake("10.3.0"), model, config, RecordedProgress())
    message = str(raised.value)
    assert "\n" not in message
    assert "could not build an engine from dynamic.onnx" in message
    assert "no optimization profile has been defined" in message
    # The profile the plan gives a dynamic ONNX makes the same build pass.
    shape = (1, 3, 320, 320)
    build_engine(
        fake("10.3.0"),
        model,
        BuildConfig("fp32", "images", shape, profile=Profile(shape, shape, shape)),
        RecordedProgress(),
    )


def test_tensorrt_older_than_86_is_refused() -> None:
    with pytest.raises(BackendError, match=r"older than 8\.6"):
        TensorRTVersion.parse("8.5.2.2")
    assert TensorRTVersion.parse("8.6.2.3").explicit_batch_flag
    assert not TensorRTVersion.parse("10.3.0.30").explicit_batch_flag
    assert TensorRTVersion.parse("11.0.0").strongly_typed

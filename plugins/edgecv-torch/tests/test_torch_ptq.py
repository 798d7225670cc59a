"""PT2E INT8 quantization of the real YOLOv8n: a smaller program the torch backend runs, close to
FP32; the eager torch.ao flow's state as the module says; one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from edgecv.backend import ConfigError, ModelError
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv_torch import ptq
from edgecv_torch.session import TorchSession
from edgecv_torch.yolov8 import YOLOv8

SIZE = (160, 160)  # small: the flow is the same at 640, the test is seconds


@pytest.fixture(scope="module")
def coco_images(assets: Path) -> Path:
    return assets / "coco128" / "images" / "train2017"


@pytest.fixture(scope="module")
def fp32(models: Path) -> YOLOv8:
    return YOLOv8.from_onnx(models / "yolov8n_fp32_dequant.onnx").eval()


@pytest.fixture(scope="module")
def quantized(fp32: YOLOv8, coco_images: Path) -> tuple[torch.fx.GraphModule, Tensor]:
    batches = ptq.calibration_batches(coco_images, SIZE, count=4, subset="even")
    example = batches[0]()
    return ptq.quantize(fp32, example, batches, quantizer="x86"), example


def test_int8_weights_and_outputs_close_to_fp32(
    fp32: YOLOv8, quantized: tuple[torch.fx.GraphModule, Tensor]
) -> None:
    module, example = quantized
    ops = {str(node.target) for node in module.graph.nodes if node.op == "call_function"}
    assert "quantized_decomposed.quantize_per_tensor.default" in ops
    # Every convolution weight is stored as int8; the float originals are gone (not saved twice).
    weights = [t for t in (*module.parameters(), *module.buffers()) if t.dim() == 4]
    assert weights and all(t.dtype == torch.int8 for t in weights)
    with torch.no_grad():
        reference, result = fp32(example), module(example)
    assert result.shape == reference.shape == (1, 84, 525)
    # Scores are probabilities: INT8 rounding moves them by a few hundredths, not more.
    assert float((result[:, 4:] - reference[:, 4:]).abs().max()) < 0.2
    top = reference[0, 4:].amax(0).topk(20).indices
    assert float((result[0, :4, top] - reference[0, :4, top]).abs().max()) < 8  # px at 160


def test_saved_program_is_smaller_and_runs_in_the_torch_backend(
    fp32: YOLOv8, quantized: tuple[torch.fx.GraphModule, Tensor], tmp_path: Path
) -> None:
    module, example = quantized
    metadata = {**fp32.metadata, "imgsz": str(list(SIZE))}
    path = ptq.save_program(module, example, tmp_path / "int8.pt2", metadata)
    fp32_size = len(ptq.program_bytes(ptq.export_program(fp32, example), metadata))
    assert path.stat().st_size * 2.5 < fp32_size
    assert not list(tmp_path.glob("*.part*"))  # written atomically
    session = TorchSession.open(path, {"device": "cpu", "threads": 1})
    assert session.spec.input.shape == (1, 3, *SIZE)
    assert session.spec.metadata["names"] == fp32.metadata["names"]
    with torch.no_grad():
        expected = module(example).numpy()
    np.testing.assert_allclose(session.run(example.numpy())[0], expected, atol=1e-4)


def test_untraceable_model_is_one_model_error() -> None:
    class Branchy(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x * 2 if x.sum() > 0 else x  # Python control flow on a tensor value

    with pytest.raises(ModelError, match=r"Cannot trace Branchy .*torch\.export failed"):
        ptq.quantize(Branchy(), torch.ones(1, 3, 8, 8), [lambda: torch.ones(1, 3, 8, 8)])


def test_no_calibration_images(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no images"):
        ptq.calibration_batches(tmp_path, SIZE)
    with pytest.raises(ConfigError, match="No calibration images"):
        ptq.quantize(nn.Conv2d(3, 3, 1), torch.ones(1, 3, 8, 8), [])
    with pytest.raises(ConfigError, match="Unknown quantizer"):
        ptq.resolve_quantizer("fbgemm")


def test_compare_speed_alternates_and_skips_warmup() -> None:
    calls: list[str] = []

    def model(name: str) -> object:
        return lambda x: calls.append(name)

    timings = ptq.compare_speed({"a": model("a"), "b": model("b")}, torch.zeros(1), runs=3, warmup=2)
    assert calls == ["a", "b"] * 5
    assert timings["a"].n == timings["b"].n == 3


def test_eager_torch_ao_flow_is_deprecated_as_documented() -> None:
    """ptq's docstring says where the seed's eager flow stands in the installed torch: it still
    converts, with a DeprecationWarning. This fails when torch changes that (update the docs)."""
    quant = torch.ao.quantization

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.quant, self.conv, self.dequant = quant.QuantStub(), nn.Conv2d(3, 4, 3), quant.DeQuantStub()

        def forward(self, x: Tensor) -> Tensor:
            return self.dequant(self.conv(self.quant(x)))

    model = Tiny().eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.qconfig = quant.get_default_qconfig("x86")
        prepared = quant.prepare(model)
        prepared(torch.rand(1, 3, 8, 8))
        converted = quant.convert(prepared)
    assert type(converted.conv).__module__.startswith("torch.ao.nn.quantized")
    deprecations = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert any("torch.ao.quantization is deprecated" in text for text in deprecations), deprecations
    assert "torch.ao.quantization is deprecated" in (ptq.__doc__ or "")


def test_cli_ptq_writes_program_and_reports_size_and_speed(
    models: Path, coco_images: Path, tmp_path: Path
) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    for image in sorted(coco_images.glob("*.jpg"))[:4]:
        shutil.copy(image, calib)
    output = tmp_path / "int8.pt2"
    result = run_edgecv(
        "compress", "ptq", "-m", models / "yolov8n_fp32_dequant.onnx", "--calib", calib,
        "--imgsz", "160", "--runs", "2", "--json", "-o", output,
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no torchao import noise, no progress when piped
    report = json.loads(result.stdout)
    assert report["calibration"] == {"folder": str(calib), "subset": "even", "images": 2}
    assert report["quantizer"] == "x86"
    assert report["size_bytes"]["int8"] == output.stat().st_size < report["size_bytes"]["fp32"] / 2.5
    assert set(report["latency_ms"]) == {"eager fp32", "eager int8"}
    assert report["latency_ms"]["eager int8"]["n"] == 2


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--calib", "EMPTY"], ["holds no images"]),
        (["--calib", "EMPTY/missing"], ["does not exist"]),
        (["--calib", "IMAGES", "--imgsz", "100"], ["--imgsz must be a positive multiple", "32"]),
        (["--calib", "IMAGES", "-o", "OUT/int8.onnx"], ["not a .pt2 file name"]),
    ],
)
def test_cli_ptq_bad_input_is_one_error_line(
    models: Path, coco_images: Path, tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    (tmp_path / "empty").mkdir()
    values = {"EMPTY": str(tmp_path / "empty"), "IMAGES": str(coco_images), "OUT": str(tmp_path)}
    args = [next((arg.replace(k, v) for k, v in values.items() if arg.startswith(k)), arg) for arg in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "int8.pt2")]
    result = run_edgecv("compress", "ptq", "-m", models / "yolov8n_fp32_dequant.onnx", *args)
    assert_one_line_error(result, *fragments)
    assert not list(tmp_path.glob("*.pt2*"))


def test_cli_prune_ratio_out_of_range_is_one_error_line(models: Path, tmp_path: Path) -> None:
    result = run_edgecv(
        "compress",
        "prune",
        "-m",
        models / "yolov8n_fp32_dequant.onnx",
        "--ratio",
        "1.5",
        "-o",
        tmp_path / "p.pt",
    )
    assert_one_line_error(result, "Pruning ratio must be in [0, 1)", "1.5")
    result = run_edgecv(
        "compress", "prune", "-m", models / "yolov8n_fp32_dequant.onnx", "--ratio", "0.3",
        "--layer-ratio", "model.9=-0.1", "-o", tmp_path / "p.pt",
    )  # fmt: skip
    assert_one_line_error(result, "for 'model.9'", "-0.1")
    assert not list(tmp_path.iterdir())

"""TorchSession on checkpoints, TorchScript and torch.export programs: same detections, its options,
and the files it refuses without running what they hold."""

from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import edgecv
from edgecv.backend import ConfigError, ModelError
from edgecv.images import read_image
from edgecv.names import COCO80
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv.testing.reference import REFERENCE_CONF, REFERENCE_IOU, match_boxes
from edgecv_torch import checkpoint
from edgecv_torch.session import METADATA_FILE, TorchSession
from edgecv_torch.yolov8 import YOLOv8

CPU = {"device": "cpu", "threads": 1}


@pytest.fixture(scope="module")
def files(yolov8: YOLOv8, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reference model as a checkpoint, TorchScript (also under a .pt name) and a .pt2 program."""
    folder = tmp_path_factory.mktemp("torch-models")
    example = torch.zeros(1, 3, *yolov8.imgsz)
    extra = {METADATA_FILE: json.dumps(yolov8.metadata)}
    with warnings.catch_warnings():  # the tracer's notes on shapes, and its deprecation
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(yolov8, example)
    traced.save(str(folder / "yolov8n.torchscript"), _extra_files=extra)
    traced.save(str(folder / "traced.pt"), _extra_files=extra)
    torch.export.save(torch.export.export(yolov8, (example,)), folder / "yolov8n.pt2", extra_files=extra)
    return {
        "checkpoint": checkpoint.save(yolov8, folder / "yolov8n.pt"),
        "torchscript": folder / "yolov8n.torchscript",
        "torchscript as .pt": folder / "traced.pt",
        "exported": folder / "yolov8n.pt2",
    }


@pytest.fixture(scope="module")
def checkpoint_detections(files: dict[str, Path], bus_path: Path) -> edgecv.Detections:
    model = edgecv.load(files["checkpoint"], backend="torch", conf=REFERENCE_CONF, iou=REFERENCE_IOU, **CPU)
    return model(read_image(bus_path))


@pytest.mark.parametrize("kind", ["torchscript", "torchscript as .pt", "exported"])
def test_every_format_gives_the_checkpoints_detections(
    kind: str, files: dict[str, Path], checkpoint_detections: edgecv.Detections, bus_path: Path
) -> None:
    model = edgecv.load(files[kind], backend="torch", conf=REFERENCE_CONF, iou=REFERENCE_IOU, **CPU)
    assert model.spec.names == COCO80 and model.spec.imgsz == (640, 640)  # from config.txt
    assert model.spec.arch == "yolov8" and model.spec.outputs[0].shape == (1, 84, 8400)
    got = model(read_image(bus_path))
    expected = checkpoint_detections
    assert [d.label for d in got] == [d.label for d in expected] and len(got) == 5
    np.testing.assert_allclose(got.scores, expected.scores, atol=1e-4)
    pairs = match_boxes([(d.label, d.box) for d in expected], [(d.label, d.box) for d in got])
    assert max(distance for _, _, distance in pairs) < 0.05


def test_auto_backend_picks_torch_for_its_formats(files: dict[str, Path]) -> None:
    for path in (files["checkpoint"], files["exported"], files["torchscript"]):
        assert edgecv.load(path, **CPU).spec.backend == "torch"


def test_bare_is_the_module_call_and_close_ends_the_session(files: dict[str, Path]) -> None:
    session = TorchSession.open(files["checkpoint"], CPU)
    tensor = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    bare = session.bare(tensor)
    assert isinstance(bare, torch.Tensor) and bare.shape == (1, 84, 8400)
    (run,) = session.run(tensor)
    assert run.dtype == np.float32 and np.array_equal(run, bare.numpy())
    session.close()
    with pytest.raises(ModelError, match="closed"):
        session.run(tensor)


class _RunsCode:
    """Unpickling this creates ``marker``: proof that a loader ran code named by a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return (os.makedirs, (str(self.marker),))


def test_a_pickled_module_is_refused_without_running_it(
    yolov8: YOLOv8, tmp_path: Path, bus_path: Path
) -> None:
    torch.save(yolov8, tmp_path / "module.pt")
    result = run_edgecv("predict", bus_path, "--model", tmp_path / "module.pt", "--backend", "torch")
    assert_one_line_error(result, "module.pt", "pickled Python objects")
    marker = tmp_path / "ran"
    torch.save({"state_dict": {}, "payload": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match=r"evil\.pt"):
        edgecv.load(tmp_path / "evil.pt", backend="torch", **CPU)
    assert not marker.exists()


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).sigmoid()


def _tiny_program(path: Path) -> Path:
    torch.export.save(torch.export.export(_Tiny().eval(), (torch.zeros(1, 3, 32, 32),)), path)
    return path


def _rewritten(source: Path, target: Path, change: Callable[[str, bytes], bytes]) -> Path:
    """A copy of the zip ``source`` with each entry's bytes passed through ``change(name, data)``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, change(info.filename, old.read(info.filename)))
    return target


def test_exported_program_with_a_pickled_payload_is_refused_before_torch_reads_it(tmp_path: Path) -> None:
    """torch.export.load would ``torch.load(weights_only=False)`` a payload flagged use_pickle."""
    marker = tmp_path / "ran"
    evil = io.BytesIO()
    torch.save(_RunsCode(marker), evil)

    def change(name: str, data: bytes) -> bytes:
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            config["config"]["conv.weight"]["use_pickle"] = True
            return json.dumps(config).encode()
        if name.endswith("weights/weight_0"):
            return evil.getvalue()
        return data

    path = _rewritten(_tiny_program(tmp_path / "tiny.pt2"), tmp_path / "evil.pt2", change)
    with pytest.raises(ModelError, match="pickled tensors"):
        TorchSession.open(path, CPU)
    assert not marker.exists()


@pytest.mark.parametrize(
    "target",
    ["torch.os.system", "torch.ops.aten.__class__.__init__", "torch.ops.aten.sigmoid._x", "builtins.eval"],
)
def test_exported_program_calling_anything_but_torch_operators_is_refused(
    target: str, tmp_path: Path
) -> None:
    """Node targets are looked up by name under ``torch`` (``torch.os.system`` resolves too)."""
    original = _tiny_program(tmp_path / "tiny.pt2")

    def change(name: str, data: bytes) -> bytes:
        if "models/" not in name:
            return data
        return data.replace(b"torch.ops.aten.sigmoid.default", target.encode())

    path = _rewritten(original, tmp_path / "calls.pt2", change)
    with pytest.raises(ModelError, match=re.escape(f"calls {target!r}, which is not a torch operator")):
        TorchSession.open(path, CPU)
    session = TorchSession.open(original, CPU)  # the untouched program loads, at its own size
    assert session.spec.input.shape == (1, 3, 32, 32) and session.spec.outputs[0].shape == (1, 4, 30, 30)


def test_a_pt2e_quantized_program_loads_in_a_fresh_process(tmp_path: Path) -> None:
    """Its quantize/dequantize operators are registered by the session, not by an earlier import."""
    pt2e = pytest.importorskip("torchao.quantization.pt2e.quantize_pt2e")
    x86 = pytest.importorskip("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer")
    example = torch.rand(1, 3, 32, 32)
    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
    prepared = pt2e.prepare_pt2e(torch.export.export(_Tiny().eval(), (example,)).module(), quantizer)
    prepared(example)
    converted = pt2e.convert_pt2e(prepared)
    torch.export.save(torch.export.export(converted, (example,)), tmp_path / "int8.pt2")
    code = (
        "import sys; from pathlib import Path; from edgecv_torch.session import TorchSession; "
        "print(TorchSession.open(Path(sys.argv[1]), {'device': 'cpu'}).spec.outputs[0].shape, "
        "'torchao' in sys.modules)"
    )
    result = run_edgecv(tmp_path / "int8.pt2", code=code)
    assert result.stdout.strip() == "(1, 4, 30, 30) False", result.stderr[-2000:]


def test_files_that_are_no_torch_model_are_model_errors(tmp_path: Path) -> None:
    (tmp_path / "text.pt").write_text("not a model")
    with zipfile.ZipFile(tmp_path / "other.pt", "w") as archive:
        archive.writestr("other/readme.txt", "hello")
    (tmp_path / "folder.pt").mkdir()
    for name, fragment in [
        ("text.pt", "not a PyTorch archive"),
        ("other.pt", "no PyTorch model"),
        ("folder.pt", "is a folder"),
    ]:
        with pytest.raises(ModelError, match=fragment) as caught:
            TorchSession.open(tmp_path / name, CPU)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"half": True, "device": "cpu"}, "half (FP16) needs a CUDA device"),
        ({"half": "yes"}, "half must be true or false"),
        ({"device": "gpu"}, "device must be cpu, cuda or cuda:N"),
        ({"device": "cuda:x"}, "device must be cpu, cuda or cuda:N"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"providers": "CPU"}, "Unknown torch option"),
    ],
)
def test_bad_options_are_config_errors(
    options: dict[str, object], fragment: str, files: dict[str, Path]
) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        TorchSession.open(files["checkpoint"], options)


def test_cuda_is_refused_clearly_without_a_gpu(files: dict[str, Path]) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: CUDA is tested by test_cuda_fp32_and_fp16_agree_with_the_cpu")
    with pytest.raises(ConfigError, match="torch device cuda is not available"):
        TorchSession.open(files["checkpoint"], {"device": "cuda"})
    assert TorchSession.open(files["checkpoint"], {}).device == torch.device("cpu")  # the default here


def test_threads_sets_torchs_intra_op_threads(tmp_path: Path) -> None:
    tiny = _tiny_program(tmp_path / "tiny.pt2")
    TorchSession.open(tiny, {"device": "cpu", "threads": 2})
    assert torch.get_num_threads() == 2
    TorchSession.open(tiny, CPU)
    assert torch.get_num_threads() == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch on this machine")
def test_cuda_fp32_and_fp16_agree_with_the_cpu(files: dict[str, Path], bus_path: Path) -> None:
    image = read_image(bus_path)
    cpu = edgecv.load(files["checkpoint"], backend="torch", **CPU)(image)
    for options in ({"device": "cuda"}, {"device": "cuda", "half": True}):
        for kind in ("checkpoint", "exported"):
            got = edgecv.load(files[kind], backend="torch", **options)(image)
            assert [d.label for d in got] == [d.label for d in cpu], (kind, options)
            pairs = match_boxes([(d.label, d.box) for d in cpu], [(d.label, d.box) for d in got])
            assert max(distance for _, _, distance in pairs) < 2.0, (kind, options)

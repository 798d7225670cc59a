"""Where ``backend="auto"`` puts OpenVINO: above ONNX Runtime for .onnx on x86 CPUs without an NVIDIA
GPU (measured faster there, see the README), below it elsewhere; IR folders are OpenVINO's alone."""

from __future__ import annotations

import platform
from pathlib import Path
from types import ModuleType

import pytest
from openvino_helpers import YOLO11, exported

import edgecv
from edgecv_openvino import plugin

ONNX_PRIORITY = 50
TENSORRT_PRIORITY = 45


@pytest.mark.parametrize(
    ("machine", "nvidia", "above_onnx"),
    [
        ("x86_64", False, True),
        ("AMD64", False, True),
        ("x86_64", True, False),  # TensorRT / ONNX Runtime's CUDA provider keep the GPU
        ("aarch64", False, False),
        ("arm64", False, False),
    ],
)
def test_priority_rule(machine: str, nvidia: bool, above_onnx: bool) -> None:
    priority = plugin.auto_priority(machine, nvidia)
    assert (priority > ONNX_PRIORITY) is above_onnx
    if not above_onnx:
        assert priority < TENSORRT_PRIORITY


def test_auto_on_this_machine(fresh_plugins: ModuleType, models: Path) -> None:
    registered = next(b for b in fresh_plugins.backends() if b.name == "openvino")
    expected = plugin.auto_priority(platform.machine(), plugin.NVIDIA_DEVICE.exists())
    assert registered.priority == expected
    chosen = edgecv.load(models / YOLO11).backend
    assert chosen == ("openvino" if expected > ONNX_PRIORITY else "onnx")


def test_ir_folder_and_xml_load_with_auto(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = exported(tmp_path_factory, YOLO11)
    assert edgecv.load(folder).backend == "openvino"
    assert edgecv.load(next(folder.glob("*.xml"))).backend == "openvino"
    assert edgecv.load(next(folder.glob("*.bin"))).backend == "openvino"


def test_a_folder_without_an_ir_is_not_claimed(tmp_path: Path) -> None:
    (tmp_path / "model.xml").write_text("<net/>")  # no .bin beside it: not an IR folder
    assert not plugin.looks_like_model(tmp_path)
    assert not plugin.looks_like_model(tmp_path / "missing.bin")
    assert plugin.looks_like_model(tmp_path / "model.xml")

"""A fake ``hailo_sdk_client`` (the Hailo Dataflow Compiler's Python API) for tests without the compiler.

It keeps the names ``edgecv_hailo.export`` uses (``typings/hailo_sdk_client``), their arguments and
their call order, and fails where the real compiler fails:

- ``ClientRunner(hw_arch=...)``: an arch this compiler line does not know -> ``DfcError``;
- ``translate_onnx_model``: reads the ONNX with ``onnx``; unknown start/end nodes or an input shape
  that contradicts the graph -> ``DfcError``. It builds an HN as ``get_hn_dict`` returns it: an input
  layer, one ``convN`` layer per ``Conv`` node in graph order (``original_names`` = that node,
  ``output_shapes`` = ``[[-1, H, W, C]]``), and one output layer per end node, listed before the
  convs and naming the node too (the exporter must pick the conv, whatever the order);
- ``load_model_script``: before ``translate`` -> ``DfcError``; parses ``normalization``,
  ``model_optimization_config(calibration, calibset_size=N)``, ``change_output_activation`` and
  ``nms_postprocess`` (its JSON config is read and checked against the HN: layer names, class count,
  box channels, strides, image size); any other command -> ``DfcError``;
- ``optimize(calib)``: before ``translate`` -> ``DfcError``; ``calib`` must be an ``(N, H, W, 3)``
  uint8/float32 array of the input size with at least ``calibset_size`` images;
- ``compile()``: before ``optimize`` -> ``DfcError``; returns the bytes of a fake HEF
  (``hailo_fakes.write_fake_hef``) of the translated ONNX, with NMS when the script asked for it,
  so a test can export and then run the HEF on the fake HailoRT.

``module.fake`` (``FakeDfcState``, not part of the real API) records ``calls`` (method name and
arguments, in order), ``scripts``, ``configs`` (parsed NMS JSON), ``calibrations`` (the arrays) and
``cwd`` (the folder each call ran in); ``fail`` maps a method name to an exception it raises.
``install_dfc(monkeypatch)`` puts the fake in ``sys.modules``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import pytest
from hailo_fakes import write_fake_hef

DEFAULT_VERSION = "3.31.0"
ARCHS = ("hailo8", "hailo8r", "hailo8l")
"""What the 3.x compiler line compiles for (Hailo-15/10 need the 5.x line)."""


class DfcError(Exception):
    """What the fake raises where the real compiler raises (its own exception classes)."""


@dataclass
class FakeDfcState:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)
    calibrations: list[np.ndarray[Any, Any]] = field(default_factory=list)
    cwd: list[str] = field(default_factory=list)
    fail: dict[str, BaseException] = field(default_factory=dict)
    short_keys: bool = False
    """HN layer keys without the network name (``conv42``), as some compiler versions give them."""

    def record(self, method: str, **arguments: Any) -> None:
        self.calls.append((method, arguments))
        self.cwd.append(os.getcwd())
        failure = self.fail.get(method)
        if failure is not None:
            raise failure

    @property
    def methods(self) -> list[str]:
        return [name for name, _ in self.calls]


class ClientRunner:
    fake: FakeDfcState  # set on the class by fake_dfc()

    def __init__(self, hw_arch: str | None = None, har: str | None = None) -> None:
        self.fake.record("ClientRunner", hw_arch=hw_arch, har=har)
        if hw_arch not in ARCHS:
            raise DfcError(f"Unsupported hw_arch {hw_arch!r}; this Dataflow Compiler supports {ARCHS}")
        self.hw_arch = hw_arch
        self.stage = "created"
        self.onnx_path: Path | None = None
        self.net = ""
        self.hn: dict[str, Any] = {}
        self.input_size = (0, 0)
        self.calibset_size: int | None = None
        self.nms: dict[str, Any] | None = None
        self.sigmoid: list[str] = []
        self.calibration: np.ndarray[Any, Any] | None = None

    # --- translate ------------------------------------------------------------------------------

    def translate_onnx_model(
        self,
        model: str,
        net_name: str = "model",
        start_node_names: list[str] | None = None,
        end_node_names: list[str] | None = None,
        net_input_shapes: dict[str, list[int]] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        self.fake.record(
            "translate_onnx_model",
            model=model,
            net_name=net_name,
            start_node_names=start_node_names,
            end_node_names=end_node_names,
            net_input_shapes=net_input_shapes,
        )
        if self.stage != "created":
            raise DfcError("This runner already holds a translated model")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", net_name):
            raise DfcError(f"Invalid network name {net_name!r}")
        graph_model = onnx.load(model)
        inferred = onnx.shape_inference.infer_shapes(_fixed(graph_model, net_input_shapes))
        nodes = list(graph_model.graph.node)
        names = {node.name for node in nodes}
        inputs = {value.name: value for value in graph_model.graph.input}
        for start in start_node_names or ():
            if start not in inputs and start not in names:
                raise DfcError(f"Start node {start} was not found in the model")
        for end in end_node_names or ():
            if end not in names:
                raise DfcError(f"End node {end} was not found in the model")
        (input_name,) = [
            name for name in inputs if name not in {i.name for i in graph_model.graph.initializer}
        ]
        dims = [d.dim_value for d in inferred.graph.input[0].type.tensor_type.shape.dim]
        if net_input_shapes is not None and list(net_input_shapes.get(input_name, dims)) != dims:
            raise DfcError(f"net_input_shapes {net_input_shapes} contradict the model's input {dims}")
        self.input_size = (dims[2], dims[3])
        values = [*inferred.graph.value_info, *inferred.graph.output]
        shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
        layers: dict[str, Any] = {}

        def key(short: str) -> str:
            return short if self.fake.short_keys else f"{net_name}/{short}"

        layers[key("input_layer1")] = {
            "type": "input_layer",
            "input": [],
            "output_shapes": [[-1, dims[2], dims[3], dims[1]]],
            "original_names": [input_name],
        }
        kept = _upstream(nodes, end_node_names) if end_node_names else {node.name for node in nodes}
        convs = [node for node in nodes if node.op_type == "Conv" and node.name in kept]
        by_node = {node.name: key(f"conv{i}") for i, node in enumerate(convs, start=1)}
        # Output layers before the convs: the exporter must not rely on the order of the layers.
        for index, end in enumerate(end_node_names or [], start=1):
            layers[key(f"output_layer{index}")] = {
                "type": "output_layer",
                "input": [by_node.get(end, end)],
                "original_names": [end],
            }
        for node in convs:
            _, c, h, w = shapes[node.output[0]]
            layers[by_node[node.name]] = {
                "type": "conv",
                "output_shapes": [[-1, h, w, c]],
                "original_names": [node.name],
            }
        self.hn = {"name": net_name, "net_params": {}, "layers": layers}
        self.onnx_path, self.net, self.stage = Path(model), net_name, "translated"
        return copy.deepcopy(self.hn), {}

    def get_hn_dict(self) -> dict[str, Any]:
        self.fake.record("get_hn_dict")
        if self.stage == "created":
            raise DfcError("No model: translate one first")
        return copy.deepcopy(self.hn)

    # --- model script ---------------------------------------------------------------------------

    def load_model_script(self, model_script: str | None = None, append: bool = False) -> None:
        self.fake.record("load_model_script", model_script=model_script, append=append)
        if self.stage == "created":
            raise DfcError("No model: translate one before loading a model script")
        assert model_script is not None
        self.fake.scripts.append(model_script)
        for line in (raw.strip() for raw in model_script.splitlines()):
            if line and not line.startswith("#"):
                self._command(line)

    def _command(self, line: str) -> None:
        if re.fullmatch(r"\w+ = normalization\(\[[0-9., ]+\], \[[0-9., ]+\]\)", line):
            return
        match = re.fullmatch(r"model_optimization_config\(calibration, calibset_size=(\d+)\)", line)
        if match:
            self.calibset_size = int(match.group(1))
            return
        match = re.fullmatch(r"change_output_activation\((\w+), sigmoid\)", line)
        if match:
            self._layer(match.group(1))
            self.sigmoid.append(match.group(1))
            return
        match = re.fullmatch(r'nms_postprocess\("([^"]+)", meta_arch=yolov8, engine=(cpu|nn_core)\)', line)
        if match:
            config = json.loads(Path(match.group(1)).read_text(encoding="utf-8"))
            self._check_nms(config)
            self.fake.configs.append(config)
            self.nms = config
            return
        raise DfcError(f"Unknown model script command: {line}")

    def _layer(self, name: str) -> dict[str, Any]:
        short = name.rsplit("/", 1)[-1]
        for key, layer in self.hn["layers"].items():
            if key.rsplit("/", 1)[-1] == short:
                return dict(layer)
        raise DfcError(f"Layer {name} was not found in the network")

    def _check_nms(self, config: dict[str, Any]) -> None:
        height, width = self.input_size
        if config["image_dims"] != [height, width]:
            raise DfcError(f"image_dims {config['image_dims']} are not the input's {[height, width]}")
        for decoder in config["bbox_decoders"]:
            _, h, w, boxes = self._layer(decoder["reg_layer"])["output_shapes"][0]
            _, _, _, classes = self._layer(decoder["cls_layer"])["output_shapes"][0]
            if boxes != 4 * config["regression_length"] or classes != config["classes"]:
                raise DfcError(f"{decoder['name']}: {boxes} box / {classes} class channels do not match")
            if decoder["stride"] * h != height or decoder["stride"] * w != width:
                raise DfcError(f"{decoder['name']}: stride {decoder['stride']} does not give a {h}x{w} grid")

    # --- optimize, compile ----------------------------------------------------------------------

    def optimize(self, calib_data: np.ndarray[Any, Any]) -> None:
        self.fake.record("optimize", shape=getattr(calib_data, "shape", None))
        if self.stage == "created":
            raise DfcError("No model: translate one before optimizing")
        if not isinstance(calib_data, np.ndarray) or calib_data.dtype not in (np.uint8, np.float32):
            raise DfcError(f"Calibration data must be a uint8/float32 array, got {type(calib_data)}")
        height, width = self.input_size
        if calib_data.ndim != 4 or calib_data.shape[1:] != (height, width, 3):
            raise DfcError(f"Calibration data {calib_data.shape} is not (N, {height}, {width}, 3)")
        if self.calibset_size is not None and len(calib_data) < self.calibset_size:
            raise DfcError(f"{len(calib_data)} calibration images, calibset_size is {self.calibset_size}")
        self.fake.calibrations.append(calib_data.copy())
        self.calibration = calib_data
        self.stage = "optimized"

    def compile(self) -> bytes:
        self.fake.record("compile")
        if self.stage != "optimized":
            raise DfcError("The model must be optimized (quantized) before it is compiled")
        assert self.onnx_path is not None and self.calibration is not None
        arch = "hailo8" if self.hw_arch == "hailo8r" else str(self.hw_arch)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "fake.hef"
            if self.nms is not None:
                write_fake_hef(
                    path,
                    self.onnx_path,
                    classes=self.nms["classes"],
                    max_boxes_per_class=self.nms["max_proposals_per_class"],
                    score_threshold=self.nms["nms_scores_th"],
                    iou_threshold=self.nms["nms_iou_th"],
                    hw_arch=arch,
                    network=self.net,
                )
            else:
                frame = np.asarray(self.calibration[0], dtype=np.uint8)
                write_fake_hef(
                    path, self.onnx_path, nms=False, hw_arch=arch, calibration=frame, network=self.net
                )
            return path.read_bytes()


def _upstream(nodes: list[onnx.NodeProto], ends: list[str]) -> set[str]:
    """The nodes the compiler keeps when it cuts the graph after ``ends``: those and what feeds them."""
    producer = {output: node for node in nodes for output in node.output}
    by_name = {node.name: node for node in nodes}
    kept: set[str] = set()
    todo = [by_name[name] for name in ends]
    while todo:
        node = todo.pop()
        if node.name not in kept:
            kept.add(node.name)
            todo += [producer[name] for name in node.input if name in producer]
    return kept


def _fixed(model: onnx.ModelProto, shapes: dict[str, list[int]] | None) -> onnx.ModelProto:
    """A copy of ``model`` with the input dims of ``shapes`` (the compiler's ``net_input_shapes``)."""
    fixed = copy.deepcopy(model)
    for value in fixed.graph.input:
        wanted = (shapes or {}).get(value.name)
        if wanted is None:
            continue
        for dim, size in zip(value.type.tensor_type.shape.dim, wanted, strict=True):
            if not dim.HasField("dim_value") or dim.dim_value <= 0:
                dim.Clear()
                dim.dim_value = size
    return fixed


def fake_dfc(version: str = DEFAULT_VERSION) -> ModuleType:
    """A fake ``hailo_sdk_client`` module; ``module.fake`` is its ``FakeDfcState``."""
    state = FakeDfcState()
    module = ModuleType("hailo_sdk_client")
    module.__version__ = version  # type: ignore[attr-defined]
    module.ClientRunner = type("ClientRunner", (ClientRunner,), {"fake": state})  # type: ignore[attr-defined]
    module.fake = state  # type: ignore[attr-defined]
    return module


def install_dfc(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> ModuleType:
    """Put ``fake_dfc(**kwargs)`` where ``import hailo_sdk_client`` finds it."""
    module = fake_dfc(**kwargs)
    monkeypatch.setitem(sys.modules, "hailo_sdk_client", module)
    return module

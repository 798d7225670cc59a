"""One plugin that implements every hook, exercised for real (after Datasette's ``my_plugin``).

``EveryHook`` registers its own backend (a session that delegates to the installed ONNX Runtime
backend), exporter and decoder, and implements every pipeline and service hook. The test loads a
model on that backend, predicts on bus.jpg, runs ``edgecv export`` to the plugin's format and a
short ``Runtime`` on a video with an event log and a sink of the plugin's own URL scheme, then
checks what every hook was called with. A hookspec that the plugin does not implement fails
``test_the_plugin_implements_every_hook``, so a new hook cannot go without coverage.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import warnings
from collections import defaultdict
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner

import edgecv
from edgecv import hookspecs
from edgecv.backend import (
    Backend,
    DecodeContext,
    Decoder,
    Exporter,
    ExportOptions,
    Outputs,
    Session,
    SessionSpec,
    atomic_target,
    hookimpl,
)
from edgecv.cli import cli
from edgecv.detections import Detections
from edgecv.events.model import Event
from edgecv.events.sinks import EventSink
from edgecv.postprocess import PostprocessOptions
from edgecv.preprocess import LetterboxInfo
from edgecv.runtime import hookspecs as runtime_hookspecs
from edgecv.runtime.results import FrameResult
from edgecv.runtime.thermal import ThermalGovernor, ThrottleState
from edgecv.sensors import Temperature
from edgecv.spec import ModelSpec

BACKEND = "every-hook"
FORMAT = "everyhook"
DECODER = "everyhook-yolov8"
SCHEME = "everyhook"
PLUGIN_NAME = "every-hook-plugin"
MODEL = "yolov8n_fp32_dequant.onnx"
VIDEO = "pedestrians_vtest_30s.mp4"
SPEC_MARKER = f"{hookspecs.PROJECT_NAME}_spec"
IMPL_MARKER = f"{hookspecs.PROJECT_NAME}_impl"


def hookspec_functions() -> dict[str, Callable[..., Any]]:
    """Every hookspec of the pipeline and of the service, by name."""
    found: dict[str, Callable[..., Any]] = {}
    for module in (hookspecs, runtime_hookspecs):
        for name, value in vars(module).items():
            if hasattr(value, SPEC_MARKER) and value.__module__ == module.__name__:
                found[name] = value
    return found


def onnx_backend() -> Backend:
    """The installed ONNX Runtime backend, which this plugin's sessions delegate to."""
    by_name = {b.name: b for b in edgecv.plugins.backends()}
    assert "onnx" in by_name, f"edgecv-onnx is not installed (backends: {sorted(by_name)})"
    return by_name["onnx"]


class EveryHookSession:
    """A ``Session`` of this plugin's backend: ONNX Runtime's session underneath, calls counted."""

    def __init__(self, inner: Session) -> None:
        self.inner = inner
        self.runs = 0
        self.closed = False

    @property
    def spec(self) -> SessionSpec:
        return self.inner.spec

    def run(self, tensor: npt.NDArray[Any]) -> Outputs:
        self.runs += 1
        return self.inner.run(tensor)

    @property
    def bare(self) -> Callable[[npt.NDArray[Any]], object]:
        return self.inner.bare

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class EveryHookSink:
    """The sink of ``everyhook://`` URLs: keeps what it is sent (acknowledging means storing)."""

    def __init__(self, url: str) -> None:
        self.name = url
        self.received: list[Event] = []
        self.closed = False
        self._lock = threading.Lock()

    def send(self, events: Sequence[Event]) -> None:
        with self._lock:
            self.received.extend(events)

    def close(self) -> None:
        self.closed = True


class EveryHook:
    """Implements every hook; records each call's arguments (and a wrapper's result) by hook name."""

    def __init__(self, yolov8: Decoder) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.sessions: list[EveryHookSession] = []
        self.sinks: list[EveryHookSink] = []
        self.fail_next_preprocess = False
        self._yolov8 = yolov8
        self._lock = threading.Lock()

    def _record(self, hook: str, **arguments: Any) -> dict[str, Any]:
        with self._lock:  # per-frame hooks run in the runtime's inference thread
            self.calls[hook].append(arguments)
        return arguments

    # --- what the plugin provides -----------------------------------------------------------

    def open_session(self, path: Path, options: Mapping[str, Any]) -> Session:
        session = EveryHookSession(onnx_backend().open(path, options))
        self.sessions.append(session)
        return session

    def export(self, source: Path, output: Path, options: Mapping[str, Any]) -> Path:
        parsed = ExportOptions.parse(options, target=FORMAT, calib_methods=("none",), precisions=("fp32",))
        with atomic_target(output) as target:
            target.write_text(json.dumps({"source": source.name, "precision": parsed.precision}))
        return output

    def decoder(self) -> Decoder:
        base = self._yolov8

        def decode(outputs: Sequence[npt.NDArray[Any]], context: DecodeContext) -> Any:
            self._record("decode", outputs=outputs, context=context)
            return base.decode(outputs, context)

        return Decoder(
            name=DECODER,
            layout=f"{base.layout}, decoded by the every-hook plugin",
            decode=decode,
            matches=base.matches,
            needs_nms=base.needs_nms,
            preprocessing=base.preprocessing,
            class_count=base.class_count,
        )

    # --- declaration ------------------------------------------------------------------------

    @hookimpl
    def edgecv_register_backends(self, register: Callable[[Backend], None]) -> None:
        self._record("edgecv_register_backends", register=register)
        register(Backend(name=BACKEND, open=self.open_session, formats=(".onnx",), priority=-100))

    @hookimpl
    def edgecv_register_exporters(self, register: Callable[[Exporter], None]) -> None:
        self._record("edgecv_register_exporters", register=register)
        register(Exporter(format=FORMAT, export=self.export, description="a JSON note (test)"))

    @hookimpl
    def edgecv_register_decoders(self, register: Callable[[Decoder], None]) -> None:
        self._record("edgecv_register_decoders", register=register)
        register(self.decoder())

    # --- pipeline ---------------------------------------------------------------------------

    @hookimpl(wrapper=True)
    def edgecv_export(
        self, exporter: Exporter, source: Path, output: Path, options: Mapping[str, Any]
    ) -> Generator[None, Path | None, Path | None]:
        call = self._record("edgecv_export", exporter=exporter, source=source, output=output, options=options)
        result = yield  # the core's default: exporter.export(...)
        call["result"] = result
        return result

    @hookimpl(wrapper=True)
    def edgecv_load(
        self, backend: Backend, path: Path, options: Mapping[str, Any]
    ) -> Generator[None, Session | None, Session | None]:
        call = self._record("edgecv_load", backend=backend, path=path, options=options)
        result = yield  # the core's default: backend.open(path, options)
        call["result"] = result
        return result

    @hookimpl
    def edgecv_on_model_loaded(self, model: edgecv.Model) -> None:
        self._record("edgecv_on_model_loaded", model=model)

    @hookimpl
    def edgecv_preprocess(
        self, image: npt.NDArray[np.uint8], spec: ModelSpec
    ) -> tuple[npt.NDArray[Any], LetterboxInfo] | None:
        self._record("edgecv_preprocess", image=image, spec=spec)
        if self.fail_next_preprocess:  # makes the runtime's watchdog restart its inference worker
            self.fail_next_preprocess = False
            raise RuntimeError("every-hook: this frame fails on purpose")
        return None  # the core's letterbox

    @hookimpl(wrapper=True)
    def edgecv_infer(
        self, spec: ModelSpec, session: Session, tensor: npt.NDArray[Any]
    ) -> Generator[None, Outputs | None, Outputs | None]:
        call = self._record("edgecv_infer", spec=spec, session=session, tensor=tensor)
        result = yield  # the core's default: session.run(tensor)
        call["result"] = result
        return result

    @hookimpl
    def edgecv_postprocess(
        self,
        outputs: Sequence[npt.NDArray[Any]],
        spec: ModelSpec,
        letterbox: LetterboxInfo,
        options: PostprocessOptions,
    ) -> Detections | None:
        self._record("edgecv_postprocess", outputs=outputs, spec=spec, letterbox=letterbox, options=options)
        return None  # the core's decode (with this plugin's decoder) + NMS

    @hookimpl
    def edgecv_on_detections(
        self, model: edgecv.Model, image: npt.NDArray[np.uint8], detections: Detections
    ) -> None:
        self._record("edgecv_on_detections", model=model, image=image, detections=detections)

    # --- service ----------------------------------------------------------------------------

    @hookimpl
    def edgecv_on_result(self, result: FrameResult) -> None:
        self._record("edgecv_on_result", result=result)

    @hookimpl
    def edgecv_on_events(self, events: Sequence[Event]) -> None:
        self._record("edgecv_on_events", events=list(events))

    @hookimpl
    def edgecv_on_throttle(self, state: ThrottleState) -> None:
        self._record("edgecv_on_throttle", state=state)

    @hookimpl
    def edgecv_on_restart(self, reason: str, restarts: int) -> None:
        self._record("edgecv_on_restart", reason=reason, restarts=restarts)

    @hookimpl
    def edgecv_event_sink(self, url: str, options: Mapping[str, Any]) -> EventSink | None:
        self._record("edgecv_event_sink", url=url, options=options)
        if not url.startswith(f"{SCHEME}://"):
            return None
        sink = EveryHookSink(url)
        self.sinks.append(sink)
        return sink


def implemented_hooks() -> dict[str, Callable[..., Any]]:
    return {name: value for name, value in vars(EveryHook).items() if hasattr(value, IMPL_MARKER)}


@pytest.fixture
def every_hook(fresh_plugins: ModuleType) -> Iterator[EveryHook]:
    yolov8 = {d.name: d for d in fresh_plugins.decoders()}["yolov8"]
    plugin = EveryHook(yolov8)
    fresh_plugins.register(plugin, name=PLUGIN_NAME)
    try:
        yield plugin
    finally:
        fresh_plugins.unregister(plugin)


@pytest.fixture
def cli_side_effects() -> Iterator[None]:
    """Undo what the ``edgecv`` group installs (a warning printer, a log handler) after an in-process run."""
    logger = logging.getLogger("edgecv")
    saved = (warnings.showwarning, list(logger.handlers), logger.level, logger.propagate)
    try:
        yield
    finally:
        warnings.showwarning = saved[0]
        logger.handlers[:], logger.level, logger.propagate = saved[1], saved[2], saved[3]


def test_the_plugin_implements_every_hook() -> None:
    specs, impls = hookspec_functions(), implemented_hooks()
    assert len(specs) >= 15, sorted(specs)  # both modules were read
    assert set(impls) == set(specs), (
        f"not covered: {sorted(set(specs) - set(impls))}; not a hook: {sorted(set(impls) - set(specs))}"
    )
    for name, impl in impls.items():
        spec_parameters = list(inspect.signature(specs[name]).parameters)
        impl_parameters = [p for p in inspect.signature(impl).parameters if p != "self"]
        assert impl_parameters == spec_parameters, name


def test_every_hook_is_called_with_the_right_arguments(
    every_hook: EveryHook,
    fresh_plugins: ModuleType,
    models: Path,
    assets: Path,
    bus_path: Path,
    tmp_path: Path,
    cli_side_effects: None,
) -> None:
    plugin, calls = every_hook, every_hook.calls
    model_path = models / MODEL

    # Registration: the plugin's objects are there, owned by it.
    for hook in ("edgecv_register_backends", "edgecv_register_exporters", "edgecv_register_decoders"):
        assert len(calls[hook]) == 1 and callable(calls[hook][0]["register"]), hook
    backend = {b.name: b for b in fresh_plugins.backends()}[BACKEND]
    assert backend.plugin == PLUGIN_NAME and backend.open == plugin.open_session
    assert {e.format: e.plugin for e in fresh_plugins.exporters()}[FORMAT] == PLUGIN_NAME
    assert fresh_plugins.decoders()[0].name == DECODER  # in-process plugins' decoders are tried first

    # Load: edgecv_load wraps the core's default, which opened through this plugin's Backend.
    model = edgecv.load(model_path, backend=BACKEND, threads=1)
    (load,) = calls["edgecv_load"]
    assert isinstance(load["backend"], Backend) and load["backend"].name == BACKEND
    assert load["path"] == model_path and dict(load["options"]) == {"threads": 1}
    (session,) = plugin.sessions
    assert load["result"] is session is model.session and isinstance(session, Session)
    assert [c["model"] for c in calls["edgecv_on_model_loaded"]] == [model]
    assert model.spec.backend == BACKEND and model.spec.decoder.name == DECODER

    # One prediction: every per-frame hook once, and the detections are ONNX Runtime's own.
    detections = model(bus_path)
    (preprocess,) = calls["edgecv_preprocess"]
    assert preprocess["image"].dtype == np.uint8 and preprocess["image"].shape == (1080, 810, 3)
    assert preprocess["spec"] is model.spec
    (infer,) = calls["edgecv_infer"]
    assert infer["spec"] is model.spec and infer["session"] is session and session.runs == 1
    assert infer["tensor"].shape == (1, 3, 640, 640) and infer["tensor"].dtype == np.float32
    assert [o.dtype for o in infer["result"]] == [np.float32] and infer["result"][0].shape == (1, 84, 8400)
    bare_outputs = model.bare_infer()(infer["tensor"])  # the session's bare call: onnxruntime's own
    assert isinstance(bare_outputs, list)
    np.testing.assert_array_equal(bare_outputs[0], infer["result"][0])
    (postprocess,) = calls["edgecv_postprocess"]
    assert postprocess["outputs"] is infer["result"] and postprocess["spec"] is model.spec
    assert isinstance(postprocess["letterbox"], LetterboxInfo)
    assert postprocess["letterbox"].image_shape == (1080, 810)
    assert isinstance(postprocess["options"], PostprocessOptions) and postprocess["options"] == model.options
    (decode,) = calls["decode"]
    assert isinstance(decode["context"], DecodeContext) and decode["context"].num_classes == 80
    (observed,) = calls["edgecv_on_detections"]
    assert observed["model"] is model and observed["image"] is preprocess["image"]
    assert observed["detections"] is detections and detections.source == str(bus_path)
    with edgecv.load(model_path, backend="onnx") as reference:
        expected = reference(bus_path)
    assert detections.labels == expected.labels == ["person", "person", "person", "bus", "person"]
    np.testing.assert_allclose(detections.boxes, expected.boxes, atol=1e-3)
    np.testing.assert_allclose(detections.scores, expected.scores, atol=1e-5)

    # Export through the CLI's own code path (in process, so it sees this plugin).
    output = tmp_path / "model.everyhook"
    exported = CliRunner().invoke(
        cli, ["export", "--model", str(model_path), "--to", FORMAT, "--output", str(output)]
    )
    assert exported.exit_code == 0, (exported.output, exported.exception)
    assert f"exported {model_path} -> {output}" in exported.output
    (export,) = calls["edgecv_export"]
    assert isinstance(export["exporter"], Exporter) and export["exporter"].format == FORMAT
    assert export["source"] == model_path and export["output"] == output == export["result"]
    # --precision left out reaches the exporter unset; ExportOptions.parse gives its default (fp32).
    assert export["options"]["precision"] is None and export["options"]["imgsz"] is None
    assert json.loads(output.read_text()) == {"source": MODEL, "precision": "fp32"}

    # A short run: event log at a path, sink by URL, a warm sensor, one failed frame.
    for hook in ("edgecv_preprocess", "edgecv_infer", "edgecv_postprocess", "edgecv_on_detections"):
        calls[hook].clear()
    plugin.fail_next_preprocess = True
    video = assets / "videos" / VIDEO
    governor = ThermalGovernor(reader=lambda: Temperature(80.0, "every-hook sensor"), interval_s=0.0)
    with edgecv.Runtime(
        model,
        str(video),
        edgecv.RunConfig(max_frames=12, event_flush_s=0.05),
        events=tmp_path / "events.db",
        sink=f"{SCHEME}://inbox",
        thermal=governor,
    ) as runtime:
        results = list(runtime.results())
    assert (tmp_path / "events.db").is_file()

    assert [c["result"] for c in calls["edgecv_on_result"]] == results and len(results) == 12
    assert all(isinstance(r, FrameResult) for r in results)
    assert {r.source for r in results} == {runtime.source.name} and VIDEO in results[0].source
    assert [r.frame for r in results] == sorted(r.frame for r in results)
    (throttle,) = calls["edgecv_on_throttle"]  # 80 °C: from full speed to 0.6, once
    assert isinstance(throttle["state"], ThrottleState) and throttle["state"].factor == pytest.approx(0.6)
    assert throttle["state"].celsius == 80.0 and throttle["state"].source == "every-hook sensor"
    (restart,) = calls["edgecv_on_restart"]
    assert restart["restarts"] == 1 and "fails on purpose" in restart["reason"]
    inferred = [r for r in results if r.inferred]
    assert 3 <= len(inferred) < len(results)  # one frame lost to the restart, then every 2nd frame
    assert len(calls["edgecv_on_detections"]) == len(calls["edgecv_infer"]) == len(inferred)
    assert len(calls["edgecv_preprocess"]) == len(inferred) + 1  # the failed frame got that far
    assert all(c["session"] is session for c in calls["edgecv_infer"])

    (opened,) = calls["edgecv_event_sink"]
    assert opened["url"] == f"{SCHEME}://inbox" and isinstance(opened["options"], Mapping)
    (sink,) = plugin.sinks
    written = [e for c in calls["edgecv_on_events"] for e in c["events"]]
    assert written and all(isinstance(e, Event) and e.kind == "detection" for e in written)
    assert {e.frame for e in written} <= {r.frame for r in inferred}
    assert {e.id for e in sink.received} == {e.id for e in written}  # acknowledged, all of them
    assert sink.closed

    model.close()
    assert session.closed

    # Every hook of both modules was reached.
    assert set(hookspec_functions()) <= set(calls), sorted(set(hookspec_functions()) - set(calls))

"""``BackendConformance``: the pytest suite every edgecv backend should pass (see ``edgecv.testing``)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest

from edgecv import plugins, registry
from edgecv.backends import Backend, Session
from edgecv.detections import Detections
from edgecv.errors import ModelError
from edgecv.images import read_image
from edgecv.model import Model, load
from edgecv.names import COCO80
from edgecv.spec import ModelSpec, SessionSpec
from edgecv.testing.reference import (
    REFERENCE_CONF,
    REFERENCE_DETECTIONS,
    REFERENCE_IMGSZ,
    REFERENCE_IOU,
    REFERENCE_MODEL,
    format_detections,
    match_boxes,
    onnxruntime_outputs,
    raw_diff,
    reference_image,
    reference_model,
)

ONNX_BACKEND = "onnx"


def find_backend(name: str) -> Backend | None:
    return next((b for b in plugins.backends() if b.name == name), None)


def _same_detections(a: Detections, b: Detections) -> bool:
    return (
        np.array_equal(a.boxes, b.boxes)
        and np.array_equal(a.scores, b.scores)
        and np.array_equal(a.class_ids, b.class_ids)
    )


class BackendConformance:
    """Subclass as ``TestSomething`` and set ``backend``; every ``test_*`` below runs against it.

    Override the class attributes to describe a backend that legitimately differs from the
    reference (a converted or quantized model, a different input size), and the ``prepare_model``,
    ``write_corrupt_model``, ``reference_tensor`` and ``reference_outputs`` hooks for other formats.
    """

    backend: ClassVar[str] = ""
    """Name of the backend under test, as its plugin registers it. Required."""
    model: ClassVar[str | None] = None
    """Model path or registry name to load; ``None`` means the reference ONNX model."""
    load_options: ClassVar[Mapping[str, Any]] = {}
    """Extra keyword arguments for ``edgecv.load`` (backend options, ``imgsz``, ``arch``...)."""
    raw_atol: ClassVar[float] = 1e-2
    """Raw-output parity: ``|backend - onnxruntime| <= raw_atol + raw_rtol * |onnxruntime|``.
    Box rows are in input pixels (0..640), score rows in 0..1."""
    raw_rtol: ClassVar[float] = 1e-3
    score_tol: ClassVar[float] = 0.01
    box_tol_px: ClassVar[float] = 2.0
    """Largest allowed difference of a box coordinate from the ONNX Runtime backend's, in image pixels."""
    expected_detections: ClassVar[Sequence[tuple[str, float]]] = REFERENCE_DETECTIONS
    expected_imgsz: ClassVar[tuple[int, int]] = REFERENCE_IMGSZ
    expected_names: ClassVar[Sequence[str]] = COCO80
    expected_arch: ClassVar[str] = "yolov8"
    repeats: ClassVar[int] = 5

    # --- hooks a backend with another format overrides ------------------------------------------

    def prepare_model(self, reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """The model file (or folder) the backend loads, derived from the ``reference`` ONNX model.

        Default: ``model`` when set, else ``reference`` itself. A backend for another format
        converts ``reference`` into a folder from ``tmp_path_factory.mktemp(...)`` here (runs
        once per test class).
        """
        return registry.resolve(self.model) if self.model is not None else reference

    def write_corrupt_model(self, model: Path, directory: Path) -> Path:
        """A broken copy of ``model`` in ``directory``, named and laid out as the backend expects.

        Default: the first half of each file (a file, or every file of a model folder).
        """
        target = directory / model.name
        if model.is_dir():
            shutil.copytree(model, target)
            files = [p for p in target.rglob("*") if p.is_file()]
        else:
            shutil.copyfile(model, target)
            files = [target]
        for file in files:
            data = file.read_bytes()
            file.write_bytes(data[: len(data) // 2])
        return target

    def reference_tensor(self, tensor: npt.NDArray[Any], spec: ModelSpec) -> npt.NDArray[np.float32]:
        """The backend's input ``tensor`` as the reference ONNX model takes it: NCHW float32 RGB 0..1.

        Undoes input quantization, NHWC layout, BGR order and another pixel scale, so both runtimes
        see the same image. Override when the backend's preprocessing differs in other ways.
        """
        described = spec.input
        values = np.asarray(tensor)
        if described.quantization is not None:
            scale = float(np.asarray(described.quantization.scale, dtype=np.float64).reshape(-1)[0])
            zero_point = float(np.asarray(described.quantization.zero_point, dtype=np.float64).reshape(-1)[0])
            values = (values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
        values = values.astype(np.float32, copy=False)
        if described.layout == "NHWC":
            values = values.transpose(0, 3, 1, 2)
        if described.color == "BGR":
            values = values[:, ::-1]
        if not np.isclose(described.scale, 1 / 255):
            values = values * np.float32((1 / 255) / described.scale)
        return np.ascontiguousarray(values, dtype=np.float32)

    def reference_outputs(
        self, outputs: Sequence[npt.NDArray[Any]], spec: ModelSpec
    ) -> list[npt.NDArray[np.float32]]:
        """The backend's raw ``outputs`` in the reference model's units (boxes in input pixels).

        Default: unchanged, except normalized YOLOv8 boxes (``spec.boxes_normalized``, rows 0-3
        of ``[1, 4 + classes, anchors]``) which are scaled to input pixels.
        """
        converted = [np.asarray(o, dtype=np.float32) for o in outputs]
        first = converted[0] if converted else None
        if spec.boxes_normalized and spec.arch == "yolov8" and first is not None and first.ndim == 3:
            height, width = spec.input.size
            first = first.copy()
            first[:, 0:4:2, :] *= width  # cx, w
            first[:, 1:4:2, :] *= height  # cy, h
            converted[0] = first
        return converted

    # --- fixtures (class scope: one load per test class) ----------------------------------------

    def registered_backend(self) -> Backend:
        """The backend's declaration; fails (never skips) when no installed plugin registers it."""
        assert self.backend, f"{type(self).__name__} must set the class attribute `backend`"
        info = find_backend(self.backend)
        if info is None:
            records = plugins.plugin_records()
            installed = ", ".join(
                f"{r.name} ({r.distribution}: "
                f"{'broken: ' + r.error if r.error else ', '.join(r.backends) or 'no backends'})"
                for r in records
            )
            raise AssertionError(
                f"No installed plugin registers backend {self.backend!r}. "
                f"Entry points in group 'edgecv': {installed or 'none'}. "
                "Is the package installed (pip install -e .) and is its "
                "[project.entry-points.edgecv] table right?"
            )
        return info

    def available_backend(self) -> Backend:
        """The backend's declaration; skips the test when its runtime or hardware is absent."""
        info = self.registered_backend()
        status = info.availability()
        if not status.available:
            hint = f" ({status.hint})" if status.hint else ""
            pytest.skip(f"backend {self.backend!r} is not available here: {status.reason}{hint}")
        return info

    def load_model(self, path: Path) -> Model:
        return load(path, backend=self.backend, conf=REFERENCE_CONF, iou=REFERENCE_IOU, **self.load_options)

    # Class-scoped fixtures are classmethods (pytest >= 9.1 deprecates instance methods there); the
    # hooks above are called on a fresh instance, as pytest does for every test.

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_model_path(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        kit = cls()
        kit.available_backend()
        path = Path(kit.prepare_model(reference_model(), tmp_path_factory))
        assert path.exists(), f"prepare_model returned {path}, which does not exist"
        return path

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_model(cls, conformance_model_path: Path) -> Model:
        return cls().load_model(conformance_model_path)

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_image(cls) -> npt.NDArray[np.uint8]:
        return read_image(reference_image())

    # --- the suite ------------------------------------------------------------------------------

    def test_backend_is_registered_and_available(self) -> None:
        info = self.available_backend()
        assert info.plugin, f"backend {self.backend!r} has no owning plugin recorded"
        record = next((r for r in plugins.plugin_records() if r.name == info.plugin), None)
        if record is not None:  # None: registered in-process with edgecv.plugins.register()
            assert record.ok, f"plugin {record.name!r} ({record.distribution}) is broken: {record.error}"
            assert self.backend in record.backends, (
                f"plugin record {record.name!r} does not list backend {self.backend!r}: {record.backends}"
            )

    def test_backend_accepts_its_model_file(self, conformance_model_path: Path) -> None:
        info = self.registered_backend()
        assert info.accepts_path(conformance_model_path), (
            f"backend {self.backend!r} (formats {info.formats}) does not accept "
            f"{conformance_model_path.name}; backend='auto' would never pick it for this file"
        )

    def test_load_describes_the_model(self, conformance_model: Model) -> None:
        spec = conformance_model.spec
        assert isinstance(conformance_model, Model), (
            f"edgecv.load returned {type(conformance_model).__name__}"
        )
        assert spec.backend == self.backend, f"spec.backend is {spec.backend!r}, expected {self.backend!r}"
        assert spec.input.size == tuple(self.expected_imgsz), (
            f"input size is {spec.input.size}, expected {tuple(self.expected_imgsz)}"
        )
        assert tuple(spec.names) == tuple(self.expected_names), (
            f"{len(spec.names)} class names starting {list(spec.names[:3])}, expected "
            f"{len(self.expected_names)} starting {list(self.expected_names[:3])}: "
            "is the file's metadata read?"
        )
        assert spec.arch == self.expected_arch, f"arch is {spec.arch!r}, expected {self.expected_arch!r}"
        assert spec.outputs, "the backend described no outputs"

    def test_raw_outputs_match_onnxruntime(
        self,
        conformance_model: Model,
        conformance_image: npt.NDArray[np.uint8],
        record_property: Any,
    ) -> None:
        pytest.importorskip(
            "onnxruntime", reason="onnxruntime is not installed; it is the reference for raw-output parity"
        )
        spec = conformance_model.spec
        tensor, _ = conformance_model.preprocess(conformance_image)
        ort_input = self.reference_tensor(tensor, spec)
        assert ort_input.shape == (1, 3, *REFERENCE_IMGSZ), (
            f"reference_tensor gave shape {ort_input.shape}, but {REFERENCE_MODEL} takes "
            f"{(1, 3, *REFERENCE_IMGSZ)}; override reference_tensor for this backend"
        )
        expected = onnxruntime_outputs(reference_model(), ort_input)
        got = self.reference_outputs(conformance_model.infer(tensor), spec)
        assert len(got) == len(expected), f"{len(got)} outputs, onnxruntime gives {len(expected)}"
        for index, (ours, theirs) in enumerate(zip(got, expected, strict=True)):
            assert ours.shape == theirs.shape, (
                f"output {index} has shape {ours.shape}, onnxruntime's has {theirs.shape}; "
                "override reference_outputs if the layout legitimately differs"
            )
            diff = raw_diff(ours, theirs, self.raw_atol, self.raw_rtol)
            record_property(f"raw_max_abs_diff_{index}", diff.max_abs)
            assert diff.outside == 0, (
                f"output {index}: measured max abs diff {diff.max_abs:.6g} vs onnxruntime at index "
                f"{diff.where} ({self.backend} {diff.got:.6g}, onnxruntime {diff.expected:.6g}); "
                f"{diff.outside} of {diff.size} values exceed "
                f"raw_atol={self.raw_atol} + raw_rtol={self.raw_rtol} * |onnxruntime|"
            )

    def test_detections_match_reference(
        self, conformance_model: Model, conformance_image: npt.NDArray[np.uint8]
    ) -> None:
        detections = conformance_model(conformance_image, conf=REFERENCE_CONF, iou=REFERENCE_IOU)
        got = [(d.label, d.score) for d in detections]
        expected = list(self.expected_detections)
        message = (
            f"{self.backend} on bus.jpg (conf {REFERENCE_CONF}, iou {REFERENCE_IOU}):\n"
            f"  got      {format_detections(got)}\n"
            f"  expected {format_detections(expected)} (score_tol {self.score_tol})"
        )
        assert [label for label, _ in got] == [label for label, _ in expected], message
        worst = max((abs(s - e) for (_, s), (_, e) in zip(got, expected, strict=True)), default=0.0)
        assert worst <= self.score_tol, f"{message}\n  largest score difference {worst:.4f}"

    def test_boxes_match_onnx_backend(
        self, conformance_model: Model, conformance_image: npt.NDArray[np.uint8]
    ) -> None:
        onnx = find_backend(ONNX_BACKEND)
        if onnx is None or not onnx.availability().available:
            pytest.skip("the onnx backend (edgecv-onnx) is not available to compare boxes with")
        reference = load(reference_model(), backend=ONNX_BACKEND, conf=REFERENCE_CONF, iou=REFERENCE_IOU)
        theirs = reference(conformance_image)
        ours = conformance_model(conformance_image, conf=REFERENCE_CONF, iou=REFERENCE_IOU)
        assert len(ours) == len(theirs), (
            f"{len(ours)} detections ({ours!r}), onnx backend has {len(theirs)} ({theirs!r})"
        )
        pairs = match_boxes([(d.label, d.box) for d in theirs], [(d.label, d.box) for d in ours])
        lines = [
            f"  onnx {theirs[i].label} {[round(v, 1) for v in theirs[i].box]} -> "
            + (
                f"{[round(v, 1) for v in ours[j].box]} (max diff {dist:.3g} px)"
                if j is not None
                else "no match"
            )
            for i, j, dist in pairs
        ]
        worst = max(dist for _, _, dist in pairs) if pairs else 0.0
        assert worst <= self.box_tol_px, (
            f"boxes differ from the onnx backend's by up to {worst:.3g} px (box_tol_px {self.box_tol_px}):\n"
            + "\n".join(lines)
        )

    def test_corrupt_model_raises_model_error(self, conformance_model_path: Path, tmp_path: Path) -> None:
        corrupt = self.write_corrupt_model(conformance_model_path, tmp_path)
        try:
            self.load_model(corrupt)
        except ModelError as exc:
            text = str(exc)
            assert text.strip(), "ModelError has an empty message"
            assert "\n" not in text, f"ModelError message spans {len(text.splitlines())} lines: {text!r}"
        except Exception as exc:
            raise AssertionError(
                f"loading a truncated {corrupt.name} raised {type(exc).__name__} instead of "
                f"edgecv.errors.ModelError: {exc}"
            ) from exc
        else:
            raise AssertionError(
                f"backend {self.backend!r} loaded a truncated {corrupt.name} without an error"
            )

    def test_repeated_calls_are_stable(
        self, conformance_model: Model, conformance_image: npt.NDArray[np.uint8]
    ) -> None:
        runs = [conformance_model(conformance_image) for _ in range(self.repeats)]
        for number, run in enumerate(runs[1:], start=2):
            assert _same_detections(run, runs[0]), f"call {number} gave {run!r}, call 1 gave {runs[0]!r}"

    def test_list_input_returns_list(
        self, conformance_model: Model, conformance_image: npt.NDArray[np.uint8]
    ) -> None:
        single = conformance_model(conformance_image)
        sources: list[Any] = [conformance_image, str(reference_image()), conformance_image]
        results = conformance_model(sources)
        assert isinstance(results, list), f"a list input gave {type(results).__name__}, expected list"
        assert len(results) == len(sources), f"{len(sources)} images gave {len(results)} results"
        for index, result in enumerate(results):
            assert isinstance(result, Detections), f"item {index} is {type(result).__name__}"
            assert _same_detections(result, single), f"item {index} gave {result!r}, a single call {single!r}"

    def test_infer_returns_float32_outputs_matching_spec(
        self, conformance_model: Model, conformance_image: npt.NDArray[np.uint8]
    ) -> None:
        spec = conformance_model.spec
        tensor, _ = conformance_model.preprocess(conformance_image)
        outputs = conformance_model.infer(tensor)
        assert len(outputs) == len(spec.outputs), (
            f"{len(outputs)} outputs, spec.outputs lists {len(spec.outputs)}"
        )
        for output, described in zip(outputs, spec.outputs, strict=True):
            assert isinstance(output, np.ndarray), f"output {described.name!r} is {type(output).__name__}"
            assert output.dtype == np.float32, (
                f"output {described.name!r} is {output.dtype}, expected float32"
            )
            assert output.ndim == len(described.shape), (
                f"output {described.name!r} has shape {output.shape}, spec says {described.shape}"
            )
            mismatched = [
                (axis, want, have)
                for axis, (want, have) in enumerate(zip(described.shape, output.shape, strict=True))
                if want is not None and want != have
            ]
            assert not mismatched, (
                f"output {described.name!r} has shape {output.shape}, spec says {described.shape}"
            )

    def test_session_follows_the_protocol(self, conformance_model: Model) -> None:
        session = conformance_model.session
        assert isinstance(session, Session), (
            f"{type(session).__name__} lacks part of edgecv.backend.Session (spec, run, bare, close)"
        )
        assert isinstance(session.spec, SessionSpec), f"session.spec is {type(session.spec).__name__}"
        assert session.spec.outputs == conformance_model.spec.outputs

    def test_bare_call_runs_the_runtime_on_the_prepared_tensor(
        self, conformance_model: Model, conformance_image: npt.NDArray[np.uint8]
    ) -> None:
        tensor, _ = conformance_model.preprocess(conformance_image)
        bare = conformance_model.bare_infer()
        assert callable(bare), f"session.bare is {type(bare).__name__}, expected a callable"
        result = bare(tensor)
        assert result is not None, "the bare call returned nothing: it should return the runtime's outputs"
        # The bare call must leave the session usable for the pipeline (bench alternates the two).
        assert _same_detections(conformance_model(conformance_image), conformance_model(conformance_image))

    def test_close_releases_the_session(self, conformance_model_path: Path) -> None:
        model = self.load_model(conformance_model_path)
        with model:
            assert len(model(read_image(reference_image()))) > 0
        model.close()  # a second close is harmless

"""Everything that touches ncnn: options, loading a param/bin pair, running an extractor.

ncnn has no shape inference without running the net, and its ``.param`` declares no input size, so
the input size comes from ``metadata.yaml`` (``imgsz``, written by edgecv's and Ultralytics' exports)
and the output shapes from one probe run at load time. ncnn Mats have no batch dimension: shapes
are reported with it (``[1, 84, 8400]``) and outputs are returned with it, as the decoders expect.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.backend import (
    BackendError,
    ConfigError,
    ModelError,
    SessionSpec,
    TensorSpec,
    check_options,
    imgsz_from_metadata,
    one_line,
    positive_int,
    single_input,
    stderr_captured,
)
from edgecv_ncnn import metadata as metafile
from edgecv_ncnn import paramfile
from edgecv_ncnn.contention import ContentionWatch, shared_threads, usable_cpus

KNOWN_OPTIONS = frozenset({"threads", "fp16", "vulkan", "light_mode", "adaptive"})
OPENMP_WAIT_VARIABLES = frozenset({"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"})
# libgomp's spin count between layers when the user sets neither variable (libgomp's own default is
# 300000, "about 3 ms"; PASSIVE is 0). Measured on 2 cores (yolov8n, 640): 10000 is as fast as
# libgomp's default on free cores (0.99x Ultralytics' NCNN; PASSIVE 1.33x, 1000 1.06x) and bounds
# the time a waiting thread burns when the cores are shared. benchmarks/ncnn_vs_ultralytics.py.
DEFAULT_SPINCOUNT = "10000"
# Probe sizes for a model without metadata: output dimensions that differ between them are dynamic.
PROBE_SIZES = ((640, 640), (320, 320))
VULKAN_HINT = (
    "Install the GPU's Vulkan driver (libvulkan1 and the vendor's ICD) so ncnn can see the device, "
    "or drop vulkan=True to run on the CPU."
)


@attrs.frozen
class NcnnOptions:
    """The backend options of ``edgecv.load(..., backend="ncnn", **options)``, checked once.

    ``fp16`` (default off) switches fp16 storage, packing and arithmetic together; off, ncnn computes
    in fp32 and matches ONNX Runtime to ~1e-3; on, it is faster where the hardware has fp16 (ARMv8.2
    CPUs, GPUs) at a small accuracy cost, and changes nothing where it has not. ``vulkan`` (default
    off) runs on the GPU through Vulkan. ``light_mode`` (ncnn's default, on) frees intermediate blobs
    during a run. ``adaptive`` (default on) runs a passively-waiting copy of the net while other
    threads compete for the cores (see ``NcnnSession``); it is off when ``threads`` is given.
    """

    threads: int | None = None
    fp16: bool = False
    vulkan: bool = False
    light_mode: bool = True
    adaptive: bool = True

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> NcnnOptions:
        check_options(options, KNOWN_OPTIONS, "ncnn")
        threads = positive_int(options, "threads", "ncnn")
        flags = {}
        for name in ("fp16", "vulkan", "light_mode", "adaptive"):
            value = options.get(name)
            if value is not None and not isinstance(value, bool):
                raise ConfigError(
                    f"ncnn option {name} must be True or False, got {value!r}",
                    f"Pass -o {name}=true or -o {name}=false ({name}=True in Python).",
                )
            if value is not None:
                flags[name] = value
        return cls(threads=threads, **flags)


# Whether the user chose how OpenMP waits (OMP_WAIT_POLICY), as seen when ncnn was first imported.
_user_wait_policy: bool | None = None


def _ncnn() -> Any:
    """The ncnn module (imported here, at load time, not when the plugin is discovered)."""
    global _user_wait_policy
    if "ncnn" in sys.modules:
        if _user_wait_policy is None:  # imported before edgecv: libgomp's wait is whatever it read
            _user_wait_policy = "OMP_WAIT_POLICY" in os.environ
        return sys.modules["ncnn"]
    _user_wait_policy = "OMP_WAIT_POLICY" in os.environ
    # ncnn's libgomp spins between layers, 300000 times by default: fast on free cores, but with
    # other busy threads on them (a capture thread, another process) a spinning thread burns the
    # slice its partner needs (yolov8n on 2 shared cores: 95 ms passive, 1.2-5 s spinning). A
    # bounded spin keeps the speed on free cores; NcnnSession switches to passive-like waits while
    # the cores are shared. libgomp reads the variable once, when ncnn loads it: it is set for the
    # import only, so that no later OpenMP runtime or child process inherits it. Either variable
    # set by the user is kept and wins.
    defaulted = not (OPENMP_WAIT_VARIABLES & os.environ.keys())
    if defaulted:
        os.environ["GOMP_SPINCOUNT"] = DEFAULT_SPINCOUNT
    try:
        return importlib.import_module("ncnn")
    except ImportError as exc:
        from edgecv_ncnn.plugin import INSTALL_HINT

        raise BackendError(f"ncnn cannot be imported: {exc}", INSTALL_HINT) from exc
    finally:
        if defaulted:
            os.environ.pop("GOMP_SPINCOUNT", None)


def _quote(lines: Sequence[str]) -> str:
    return f" (ncnn: {one_line(lines[-1])})" if lines else ""


def mat_shape(mat: Any) -> tuple[int, ...]:
    """A Mat's shape in numpy order (c, d, h, w by dims), without the batch dimension ncnn lacks."""
    dims = int(mat.dims)
    if dims == 1:
        return (int(mat.w),)
    if dims == 2:
        return (int(mat.h), int(mat.w))
    if dims == 3:
        return (int(mat.c), int(mat.h), int(mat.w))
    return (int(mat.c), int(mat.d), int(mat.h), int(mat.w))


def probe(
    net: Any, input_name: str, output_names: Sequence[str], size: tuple[int, int], channels: int
) -> list[tuple[int, ...]]:
    """Output shapes (with batch) of ``net`` for a blank image of ``size`` (height, width)."""
    data = np.zeros((channels, *size), np.float32)
    shapes = []
    with net.create_extractor() as extractor:
        extractor.input(input_name, _ncnn().Mat(data))
        for name in output_names:
            code, mat = extractor.extract(name)
            if code != 0:
                raise ModelError(
                    f"ncnn cannot run the model: computing output {name!r} failed (code {code})",
                    "The .param uses layers this ncnn cannot run or the input size is wrong: "
                    "update ncnn (pip install -U ncnn) or export the model again.",
                )
            shapes.append((1, *mat_shape(mat)))
    del data
    return shapes


def read_metadata(files: paramfile.ModelFiles) -> dict[str, str]:
    if files.metadata is None:
        return {}
    try:
        return metafile.flatten(metafile.parse(files.metadata.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, metafile.MetadataError) as exc:
        raise ModelError(
            f"Cannot read {files.metadata}: {exc}",
            "Fix it (class names under names:, input size under imgsz:) or delete it and pass "
            "--imgsz/--names.",
        ) from exc


def _counting_reader(ncnn: Any, data: bytes) -> Any:
    """An ``ncnn.DataReader`` over ``data`` that counts the bytes ncnn reads.

    ncnn reads the weights the graph asks for and stops: a .bin of another model often loads with
    status 0 (its weight-type flags are misread) and gives garbage. Every byte of a matching .bin is
    read, so ``consumed != len(data)`` exposes a mismatch exactly, whichever file is larger.
    """
    base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
    capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    capsule_pointer.restype = ctypes.c_void_p
    capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]

    class CountingReader(ncnn.DataReader):  # type: ignore[misc]  # untyped pybind11 class
        def __init__(self) -> None:
            super().__init__()
            self.data = data  # keeps `base` valid
            self.consumed = 0

        def read(self, buffer: Any, size: int) -> int:
            count = max(0, min(size, len(self.data) - self.consumed))
            if count:
                target = buffer if isinstance(buffer, int) else capsule_pointer(buffer, None)
                ctypes.memmove(target, base + self.consumed, count)
            self.consumed += count
            return count

        def scan(self, format: str, pointer: Any) -> int:
            return 0  # only the text .param is scanned, and ncnn reads that from the file itself

    return CountingReader()


def _load_weights(net: Any, files: paramfile.ModelFiles) -> None:
    ncnn = _ncnn()
    data = files.bin.read_bytes()
    consumed: int | None = None
    with stderr_captured() as lines:
        try:
            reader = _counting_reader(ncnn, data)
            status = net.load_model(reader)
            consumed = reader.consumed
        except Exception:  # a binding without Python DataReaders: load by path, status only
            status = net.load_model(str(files.bin))
    if status != 0:
        raise ModelError(
            f"ncnn cannot load the weights {files.bin.name} for {files.param.name}: the files do not "
            f"match or the .bin is truncated{_quote(lines)}",
            "Use the .param and .bin exported together (same folder, same name), or export the model again.",
        )
    if consumed is not None and consumed != len(data):
        raise ModelError(
            f"{files.bin.name} ({len(data)} bytes) does not belong to {files.param.name}, whose layers "
            f"read {consumed} bytes of weights",
            "Use the .param and .bin exported together (same folder, same name), or export the model again.",
        )


def create_net(options: NcnnOptions) -> Any:
    ncnn = _ncnn()
    net = ncnn.Net()
    opt = net.opt
    opt.lightmode = options.light_mode
    if options.threads is not None:
        opt.num_threads = options.threads
    # Off by default, although ncnn's own default is on: where the CPU has fp16 (ARMv8.2, some x86,
    # GPUs) ncnn would then compute in fp16 and drift from the ONNX model. bf16 is off in ncnn already.
    opt.use_fp16_packed = options.fp16
    opt.use_fp16_storage = options.fp16
    opt.use_fp16_arithmetic = options.fp16
    if options.vulkan:
        if not hasattr(ncnn, "get_gpu_count"):
            raise BackendError("This ncnn build has no Vulkan support (vulkan=True)", VULKAN_HINT)
        with stderr_captured() as lines:  # the Vulkan loader prints a line per failed attempt
            count = int(ncnn.get_gpu_count())
        if count == 0:
            raise BackendError(f"vulkan=True but ncnn finds no Vulkan GPU{_quote(lines)}", VULKAN_HINT)
        opt.use_vulkan_compute = True
    return net


def _output_shapes(
    net: Any, input_name: str, output_names: Sequence[str], size: tuple[int, int] | None, channels: int
) -> list[tuple[int | None, ...]]:
    """Output shapes from a probe run at ``size``; without one, dimensions that vary are ``None``."""
    try:
        with stderr_captured() as lines:
            if size is not None:
                return list(probe(net, input_name, output_names, size, channels))
            first, second = (probe(net, input_name, output_names, s, channels) for s in PROBE_SIZES)
    except ModelError as exc:
        # Outside the ``with``: the captured lines are only there once it has closed.
        raise ModelError(f"{exc.message}{_quote(lines)}", exc.hint) from exc
    return [
        tuple(a if a == b else None for a, b in zip(x, y, strict=True))
        for x, y in zip(first, second, strict=True)
    ]


def load_net(files: paramfile.ModelFiles, options: NcnnOptions) -> Any:
    """A new ``ncnn.Net`` with ``options``, its graph and weights loaded from ``files``."""
    net = create_net(options)
    with stderr_captured() as lines:
        # From memory: the bindings refuse a file name that is not UTF-8, but not its text.
        status = net.load_param_mem(files.param.read_text(encoding="utf-8", errors="replace"))
    if status != 0:
        raise ModelError(
            f"ncnn cannot load the graph {files.param.name}{_quote(lines)}",
            "It uses layers this ncnn does not know or is damaged: update ncnn (pip install -U ncnn) "
            "or export the model again.",
        )
    _load_weights(net, files)
    return net


class NcnnSession:
    """An ``ncnn.Net`` with its blob names bound once. One extractor per call, so calls may overlap.

    Load-aware waiting (``adaptive``, on unless ``threads`` is given or the user set
    ``OMP_WAIT_POLICY``): while a ``ContentionWatch`` sees other threads competing for the cores,
    calls run on a second copy of the net loaded with fewer threads (``shared_threads``: the usable
    CPUs less one), so that its team does not wait at every layer for a thread that waits for a
    core, while the first net keeps the bounded spin that is fastest on free cores. The copy is
    loaded on the first contended call (once; it holds a second copy of the weights). ncnn fixes
    the thread count of its convolutions at load time, hence a second net rather than a per-call
    thread count.
    """

    def __init__(
        self,
        net: Any,
        spec: SessionSpec,
        options: NcnnOptions,
        reload: Callable[[NcnnOptions], Any] | None = None,
    ) -> None:
        self.net = net
        self.mat = _ncnn().Mat
        self._spec = spec
        self.input_name = spec.input.name
        self.output_names = [o.name for o in spec.outputs]
        self.options = options
        self._closed = False
        self._reload = reload
        self._shared_net: Any = None
        self._shared_lock = threading.Lock()
        self.shared_threads = shared_threads()
        threads = int(net.opt.num_threads)
        adaptive = (
            reload is not None
            and options.adaptive
            and options.threads is None
            and not options.vulkan
            and not _user_wait_policy
            and threads > 1
        )
        self.watch: ContentionWatch | None = (
            ContentionWatch(spare=usable_cpus() - threads) if adaptive else None
        )

    @property
    def shared_net(self) -> Any:
        """The net for shared cores (loaded on first use), or None where ``adaptive`` does not apply."""
        if self._reload is None or self.watch is None:
            return None
        with self._shared_lock:
            if self._shared_net is None:
                self._shared_net = self._reload(attrs.evolve(self.options, threads=self.shared_threads))
            return self._shared_net

    @classmethod
    def open(cls, path: Path, options: Mapping[str, Any]) -> NcnnSession:
        """Load the model folder, ``.param`` or ``.bin`` at ``path``; output shapes from a probe run."""
        settings = NcnnOptions.parse(options)
        files = paramfile.resolve(path)
        graph = paramfile.read_graph(files.param)
        input_name = single_input(graph.inputs, files.param)
        metadata = read_metadata(files)
        net = load_net(files, settings)
        declared = metadata.get("channels", "3")  # Ultralytics records it; the .param does not
        channels = int(declared) if declared.isdigit() else 3
        size = imgsz_from_metadata(metadata)
        shapes = _output_shapes(net, input_name, graph.outputs, size, channels)
        height, width = size if size is not None else (None, None)
        spec = SessionSpec(
            input=TensorSpec(input_name, (1, channels, height, width), "float32"),
            outputs=tuple(
                TensorSpec(name, shape, "float32") for name, shape in zip(graph.outputs, shapes, strict=True)
            ),
            metadata=metadata,
            layout="NCHW",
        )
        return cls(net, spec, settings, lambda changed: load_net(files, changed))

    @property
    def spec(self) -> SessionSpec:
        return self._spec

    def run(self, tensor: npt.NDArray[Any]) -> list[npt.NDArray[np.float32]]:
        if self._closed:
            raise BackendError("The ncnn session is closed", "Load the model again to run it.")
        if tensor.ndim != 4 or tensor.shape[0] != 1:
            raise BackendError(
                f"ncnn runs one image at a time; got a tensor shaped {list(tensor.shape)}",
                "Pass a [1, C, H, W] tensor.",
            )
        # ncnn.Mat(array) wraps the array's memory without copying or keeping a reference: `data`
        # must be contiguous float32 and must stay alive until the last extract below.
        data = np.ascontiguousarray(tensor[0], dtype=np.float32)
        outputs: list[npt.NDArray[np.float32]] = []
        watch, net, mark = self.watch, self.net, None
        if watch is not None:
            if watch.contended():
                net = self.shared_net
            else:
                mark = watch.begin()
        with net.create_extractor() as extractor:
            extractor.input(self.input_name, self.mat(data))
            for name in self.output_names:
                code, mat = extractor.extract(name)
                if code != 0:
                    raise BackendError(
                        f"ncnn failed to compute output {name!r} (code {code})",
                        "Check that the input size matches the model's (imgsz in metadata.yaml).",
                    )
                # Copy before the extractor goes: its blobs live in memory ncnn recycles.
                outputs.append(np.array(mat, dtype=np.float32, copy=True)[None])
        del data
        if watch is not None:
            watch.end(mark)
        return outputs

    @property
    def bare(self) -> Callable[[npt.NDArray[Any]], object]:
        net, mat, feed, names = self.net, self.mat, self.input_name, self.output_names

        def run(tensor: npt.NDArray[Any]) -> object:
            # What a hand-written ncnn script does: the prepared tensor (contiguous float32, kept
            # alive by the caller) wrapped without a copy, one extractor per frame.
            extractor = net.create_extractor()
            extractor.input(feed, mat(tensor[0]))
            return [extractor.extract(name)[1] for name in names]

        return run

    def close(self) -> None:
        """Free the graph and weights now rather than when the last reference goes (idempotent)."""
        self._closed = True
        for net in (self.net, self._shared_net):
            clear = getattr(net, "clear", None)  # older pyncnn builds lack Net.clear
            if clear is not None:
                clear()

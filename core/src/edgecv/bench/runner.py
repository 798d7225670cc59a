"""The measurement loop: end-to-end and bare runtime calls alternated call by call, in one process.

For each model the loop calls ``Model.predict`` on the decoded frame (end-to-end, timed with
``time.perf_counter`` around the call; the stages come from ``Detections.timings``) and the
runtime's own call (``Model.bare_infer()``) on the tensor that the same pipeline prepares. The two
alternate call by call, the order within each pair flipping every time, so that the noise of a busy
machine (other processes, frequency changes) falls on both alike. Medians are reported.

Several models alternate in blocks of ``block`` calls, each block opened by one untimed call:
runtimes keep their worker threads spinning for a while after a call (ONNX Runtime does by
default), and model-by-model alternation would time each model against the previous one's
spinning threads. Measured on a 2-core machine: yolo11n at 320 took ~20 ms per call when five
sessions alternated call by call, ~12.6 ms alone.

After the latency runs, each model whose session keeps frames in flight (``Model.asynchronous``)
runs as many frames again through ``Model.submit``, keeping ``in_flight`` of them outstanding
(default: the session's ``depth``): the pipelined throughput an accelerator's queue gives, which
single-frame latency cannot show. An accelerator's chip temperature (``DeviceSession``) is read
before the first call and after the last.
"""

from __future__ import annotations

import collections
import gc
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.backends import AsyncSession, DeviceSession, frames_in_flight
from edgecv.bench.stats import paired_ratio
from edgecv.devices import chip_source, chip_temperature, session_device
from edgecv.errors import BackendError, EdgecvError, one_line
from edgecv.progress import Advance, Progress, report
from edgecv.sensors import PowerMeter, Unavailable
from edgecv.summary import Summary, summarize

if TYPE_CHECKING:
    from edgecv.detections import Detections
    from edgecv.model import Model

FRAME_TIMEOUT_S = 30.0
"""The pipelined run gives up when the oldest frame in flight has no result after this long."""


@attrs.frozen
class PowerReading:
    """Average watts while one model ran (``None`` with ``reason`` when not measured)."""

    watts: float | None
    source: str | None = None
    reason: str | None = None
    samples: int = 0


@attrs.frozen
class Pipelined:
    """``frames`` submitted with ``Model.submit``, at most ``in_flight`` outstanding, in ``seconds``."""

    in_flight: int
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        """Frames completed per second, from the first submit to the last result."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@attrs.frozen
class ChipReading:
    """An accelerator (``DeviceSession``): its ``device()`` and its chip's °C around the runs."""

    device: dict[str, Any]
    before: float | None
    after: float | None
    source: str


@attrs.frozen
class Measurement:
    """What one model did over ``runs`` timed calls (after ``warmup`` untimed ones)."""

    e2e: Summary
    preprocess: Summary
    infer: Summary
    postprocess: Summary
    bare: Summary | None
    bare_reason: str | None
    overhead: float | None
    """Median end-to-end / median bare runtime call."""
    overhead_paired: float | None
    """Median over the alternated pairs of end-to-end / bare (robust to slow drifts)."""
    detections: int
    power: PowerReading
    peak_rss_mb: float | None
    warmup: int
    runs: int
    pipelined: Pipelined | None = None
    pipelined_reason: str | None = None
    """Why there is no pipelined run (a synchronous backend)."""
    chip: ChipReading | None = None

    @property
    def fps(self) -> float:
        """Frames per second at the median end-to-end latency."""
        return 1e3 / self.e2e.p50

    @property
    def fps_per_watt(self) -> float | None:
        return self.fps / self.power.watts if self.power.watts else None


def peak_rss_mb() -> float | None:
    """The process's peak resident memory (``getrusage``): process-wide, so every model loaded counts."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


class _PowerAccount:
    """Energy (or power samples) attributed to one model's timed calls."""

    def __init__(self, meter: PowerMeter | Unavailable | None) -> None:
        self.meter = meter if not isinstance(meter, Unavailable) else None
        self.reason = meter.reason if isinstance(meter, Unavailable) else None
        if meter is None:
            self.reason = "not measured"
        self.joules = 0.0
        self.seconds = 0.0
        self.samples: list[float] = []
        self._start = 0.0
        self._last_sample = float("-inf")

    def before(self) -> None:
        if self.meter is not None and self.meter.kind == "energy":
            self._start = self._read(self.meter)

    def after(self, seconds: float) -> None:
        meter = self.meter
        if meter is None:
            return
        if meter.kind == "energy":
            end = self._read(meter)
            if self.meter is not None:
                self.joules += end - self._start
                self.seconds += seconds
            return
        now = time.perf_counter()
        if now - self._last_sample >= meter.min_interval_s:
            self._last_sample = now
            watts = self._read(meter)
            if self.meter is not None:
                self.samples.append(watts)

    def _read(self, meter: PowerMeter) -> float:
        try:
            return meter.read()
        except (OSError, ValueError) as exc:
            self.meter = None
            self.reason = f"{meter.source} stopped answering during the run ({exc})"
            return 0.0

    def reading(self, source: str | None) -> PowerReading:
        if self.meter is None:
            return PowerReading(None, source, self.reason)
        if self.meter.kind == "energy":
            if self.seconds <= 0:
                return PowerReading(None, source, "no timed calls")
            return PowerReading(self.joules / self.seconds, source, samples=1)
        if not self.samples:
            return PowerReading(None, source, "no power sample was taken")
        return PowerReading(float(np.mean(self.samples)), source, samples=len(self.samples))


class _Row:
    """One model under measurement: its frame, its prepared tensor, its samples."""

    def __init__(self, model: Model, image: npt.NDArray[np.uint8], meter: PowerMeter | Unavailable | None):
        self.model = model
        self.image = image
        self.tensor, _ = model.preprocess(image)
        self.bare: Callable[[npt.NDArray[Any]], object] | None
        self.bare_reason: str | None = None
        try:
            self.bare = model.bare_infer()
        except EdgecvError as exc:
            self.bare = None
            self.bare_reason = str(exc)
        self.source = None if meter is None or isinstance(meter, Unavailable) else meter.source
        self.power = _PowerAccount(meter)
        self.e2e: list[float] = []
        self.stages: list[tuple[float, float, float]] = []
        self.bare_ms: list[float] = []
        self.detections = 0
        self._turns = 0
        self.pipelined: Pipelined | None = None
        self.pipelined_reason: str | None = None  # None: the model keeps frames in flight
        if not model.asynchronous:
            self.pipelined_reason = (
                "a plugin wraps edgecv_infer, so frames run one at a time"
                if isinstance(model.session, AsyncSession)
                else "synchronous backend"
            )
        self._device: dict[str, Any] | None = None
        self._chip_before: float | None = None
        self._chip_after: float | None = None

    def turn(self, record: bool) -> None:
        """One end-to-end call and one bare call, in the order opposite to the previous turn's."""
        self._turns += 1
        if record:
            self.power.before()
        start = time.perf_counter()
        if self._turns % 2:
            self._end_to_end(record)
            self._bare(record)
        else:
            self._bare(record)
            self._end_to_end(record)
        if record:
            self.power.after(time.perf_counter() - start)

    def _end_to_end(self, record: bool) -> None:
        start = time.perf_counter()
        detections = self.model.predict(self.image)
        elapsed = (time.perf_counter() - start) * 1e3
        if record:
            self.e2e.append(elapsed)
            timings = detections.timings
            if timings is None:
                raise EdgecvError("Model.predict returned detections without timings")
            self.stages.append((timings.preprocess, timings.infer, timings.postprocess))
            self.detections = len(detections)

    def _bare(self, record: bool) -> None:
        if self.bare is None:
            return
        start = time.perf_counter()
        self.bare(self.tensor)
        elapsed = (time.perf_counter() - start) * 1e3
        if record:
            self.bare_ms.append(elapsed)

    def read_chip(self) -> None:
        """Read the accelerator's temperature: the first call gives ``before``, the next ``after``."""
        session = self.model.session
        if not isinstance(session, DeviceSession):
            return
        if self._device is None:
            self._device = session_device(session)
            self._chip_before = chip_temperature(session)
        else:
            self._chip_after = chip_temperature(session)

    def result(self, warmup: int, runs: int) -> Measurement:
        pre, infer, post = (summarize(list(stage)) for stage in zip(*self.stages, strict=True))
        e2e = summarize(self.e2e)
        bare = summarize(self.bare_ms) if self.bare_ms else None
        return Measurement(
            e2e=e2e,
            preprocess=pre,
            infer=infer,
            postprocess=post,
            bare=bare,
            bare_reason=self.bare_reason,
            overhead=e2e.p50 / bare.p50 if bare else None,
            overhead_paired=paired_ratio(self.e2e, self.bare_ms) if bare else None,
            detections=self.detections,
            power=self.power.reading(self.source),
            peak_rss_mb=peak_rss_mb(),
            warmup=warmup,
            runs=runs,
            pipelined=self.pipelined,
            pipelined_reason=self.pipelined_reason,
            chip=None
            if self._device is None
            else ChipReading(self._device, self._chip_before, self._chip_after, chip_source(self._device)),
        )


def pipelined_throughput(
    model: Model,
    image: npt.NDArray[np.uint8],
    frames: int,
    in_flight: int,
    advance: Advance | None = None,
    timeout_s: float = FRAME_TIMEOUT_S,
) -> Pipelined:
    """Submit ``frames`` copies of ``image`` with ``model.submit``, never more than ``in_flight``
    outstanding: a new frame goes in as soon as the oldest comes back, as ``edgecv run`` does."""
    if frames < 1 or in_flight < 1:
        raise ValueError("frames and in_flight must be >= 1")
    pending: collections.deque[Future[Detections]] = collections.deque()
    submitted = 0
    start = time.perf_counter()
    while submitted < frames or pending:
        while submitted < frames and len(pending) < in_flight:
            pending.append(model.submit(image))
            submitted += 1
        _result(pending.popleft(), timeout_s)
        if advance is not None:
            advance(1)
    return Pipelined(in_flight, frames, time.perf_counter() - start)


def _result(future: Future[Detections], timeout_s: float) -> Detections:
    """A frame's detections; a frame that failed or never came back is a ``BackendError``."""
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout:
        raise BackendError(
            f"A frame in flight gave no result in {timeout_s:g} s during the pipelined run",
            "Check the device (`edgecv doctor`), or measure with --in-flight 1.",
        ) from None
    except EdgecvError:
        raise
    except Exception as exc:
        raise BackendError(
            f"A frame in flight failed during the pipelined run: {type(exc).__name__}: {one_line(exc)}",
            "Run with --debug for the traceback; `edgecv predict` checks one frame.",
        ) from exc


def _schedule(rows: int, warmup: int, runs: int, interleave: bool, block: int) -> list[tuple[int, bool]]:
    """(row, timed?) for every turn, in order."""
    if not interleave or rows == 1:
        return [(row, i >= warmup) for row in range(rows) for i in range(warmup + runs)]
    turns = [(row, False) for row in range(rows) for _ in range(warmup)]
    for start in range(0, runs, block):
        for row in range(rows):
            turns.append((row, False))  # lets the previous model's threads wind down
            turns += [(row, True)] * min(block, runs - start)
    return turns


def benchmark(
    models: Sequence[Model],
    image: npt.NDArray[np.uint8],
    *,
    warmup: int = 10,
    runs: int = 100,
    meter: PowerMeter | Unavailable | None = None,
    interleave: bool = True,
    block: int = 10,
    progress: Progress | None = None,
    in_flight: int | None = None,
) -> list[Measurement]:
    """Measure each model on ``image`` (a decoded BGR frame); one ``Measurement`` per model.

    ``interleave`` alternates several models in blocks of ``block`` timed calls, each block after
    one untimed call (the default: fair on a noisy machine); otherwise each model runs all its
    calls before the next starts. ``meter`` attributes power to each model's timed calls (see
    ``edgecv.sensors``). ``progress`` is told of each turn (stage ``bench``: one end-to-end and
    one bare call, timed or not; see ``edgecv.progress``), then of each pipelined frame (stage
    ``pipelined``). A model that keeps frames in flight then runs ``runs`` frames through
    ``Model.submit`` with ``in_flight`` outstanding (default: its session's ``depth``).
    """
    if runs < 1 or warmup < 0 or block < 1 or (in_flight is not None and in_flight < 1):
        raise ValueError("runs, block and in_flight must be >= 1 and warmup >= 0")
    rows = [_Row(model, image, meter) for model in models]
    schedule = _schedule(len(rows), warmup, runs, interleave, block)
    gc.collect()
    for row in rows:
        row.read_chip()
    with report(progress)("bench", len(schedule)) as advance:
        for index, timed in schedule:
            rows[index].turn(record=timed)
            advance(1)
    pipelining = [row for row in rows if row.pipelined_reason is None]
    if pipelining:
        with report(progress)("pipelined", runs * len(pipelining)) as advance:
            for row in pipelining:
                depth = frames_in_flight(row.model.session, in_flight)
                row.pipelined = pipelined_throughput(row.model, row.image, runs, depth, advance)
    for row in rows:
        row.read_chip()
    return [row.result(warmup, runs) for row in rows]

"""Whether other threads compete for the CPU cores ncnn runs on, measured cheaply around calls.

ncnn's OpenMP runtime (the ncnn wheel bundles libgomp) spin-waits between layers. On cores it has
to itself that is what makes it fast; when other runnable threads share the cores, a spinning
thread burns the time slice its partner needs and a run slows down several times; and a team
waits at every layer for its slowest thread, which on shared cores is one waiting for its turn.
``NcnnSession`` therefore runs, while this watch reports contention, a copy of the net loaded with
``shared_threads()``: one thread fewer than the usable CPUs (at least one; on 2 cores a serial net,
which waits for no one). On a 2-core machine with one or two busy processes beside it that was
faster than both the spinning net and a passively waiting team of 2 or 3 threads
(benchmarks/ncnn_vs_ultralytics.py); more cores were not measured.

Two signals, so that neither feeds on the other mode's own threads:

- entering: the calling thread's run-queue delay during a call (``/proc/thread-self/schedstat``),
  as a share of the call: the harm itself, which a thread that cannot actually take our cores
  (idle, or of lower scheduling class) does not cause;
- leaving: the CPU time the machine spent on other processes (``/proc/stat`` less this process's
  ``os.times()``), in CPUs: whether the competitors are gone (the copy, with fewer threads, waits
  less for a core than the fast net would: its delay cannot tell; a runnable thread that gets no
  CPU competes for none).

Both are smoothed; without procfs (not Linux) the watch never reports contention.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

# Enter when the smoothed share of a call spent waiting for a core reaches ENTER_DELAY_SHARE. Each
# call's share counts up to MAX_CALL_SHARE, so one stalled call (a 50 ms hiccup) is not enough: two
# calls that waited half their time are. Leave when the smoothed CPU use of other processes falls
# below the spare CPUs + LEAVE_OTHERS_CPUS, sampled at most every SAMPLE_SECONDS (long enough for
# /proc/stat's 10 ms ticks).
ENTER_DELAY_SHARE = 0.15
MAX_CALL_SHARE = 0.5
SMOOTHING = 0.2
LEAVE_OTHERS_CPUS = 0.25
SAMPLE_SECONDS = 0.25


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), as libgomp counts them."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def shared_threads() -> int:
    """Threads of the net for shared cores: the usable CPUs less the one a competitor takes."""
    return max(1, usable_cpus() - 1)


def run_delay_ns(proc: Path = Path("/proc")) -> int | None:
    """Nanoseconds the calling thread has spent runnable but waiting for a core; None if unknown."""
    try:
        return int((proc / "thread-self" / "schedstat").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _busy_seconds(proc: Path) -> float | None:
    """CPU seconds the whole machine has spent busy (all CPUs), from ``/proc/stat``."""
    try:
        fields = (proc / "stat").read_text().split("\n", 1)[0].split()
        user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[1:8])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class OthersCpu:
    """Each call: CPUs used by other processes since the previous call (None the first time)."""

    def __init__(self, proc: Path = Path("/proc"), clock: Callable[[], float] = time.monotonic) -> None:
        self._proc = proc
        self._clock = clock
        self._last: tuple[float, float, float] | None = None

    def __call__(self) -> float | None:
        busy = _busy_seconds(self._proc)
        if busy is None:
            return 0.0  # cannot tell: as if the others were gone (the fast net is the default)
        times = os.times()
        now = (self._clock(), busy, times.user + times.system)
        last, self._last = self._last, now
        if last is None or now[0] <= last[0]:
            return None
        return max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0]))


class ContentionWatch:
    """Tracks whether the cores are shared: ``contended()`` before a call picks the net to run;
    ``begin()``/``end()`` around a call on the fast net measure the delay it suffered.

    ``spare``: CPUs the model's threads leave free (others using up to that many do not compete).
    ``delay``, ``others`` (an ``OthersCpu`` by default) and ``clock`` are the measurements.
    """

    def __init__(
        self,
        spare: int = 0,
        delay: Callable[[], int | None] = run_delay_ns,
        others: Callable[[], float | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._leave_below = max(0, spare) + LEAVE_OTHERS_CPUS
        self._delay = delay
        self._others = others if others is not None else OthersCpu()
        self._clock = clock
        self._lock = threading.Lock()
        self._shared = False
        self._delay_share = 0.0
        self._others_level = 0.0
        self._next_sample = 0.0

    @property
    def shared(self) -> bool:
        return self._shared

    def contended(self) -> bool:
        """Whether the next call should run as on shared cores (samples the machine while so)."""
        if not self._shared:
            return False
        now = self._clock()
        with self._lock:
            if self._shared and now >= self._next_sample:
                self._next_sample = now + SAMPLE_SECONDS
                used = self._others()
                if used is not None:
                    self._others_level += SMOOTHING * (used - self._others_level)
                    if self._others_level < self._leave_below:
                        self._shared = False
                        self._delay_share = 0.0
            return self._shared

    def begin(self) -> tuple[float, int] | None:
        """A mark to hand to ``end`` after the call (None: the delay cannot be measured here)."""
        delay = self._delay()
        return None if delay is None else (self._clock(), delay)

    def end(self, mark: tuple[float, int] | None) -> None:
        if mark is None:
            return
        delay = self._delay()
        elapsed = self._clock() - mark[0]
        if delay is None or elapsed <= 0:
            return
        share = min(MAX_CALL_SHARE, (delay - mark[1]) / 1e9 / elapsed)
        with self._lock:
            self._delay_share += SMOOTHING * (share - self._delay_share)
            if not self._shared and self._delay_share >= ENTER_DELAY_SHARE:
                self._shared = True
                # Leaving takes a few quiet samples in a row, not one lucky one; the first sample
                # only starts the measuring window.
                self._others_level = max(self._others_level, self._leave_below + 1.0)
                self._next_sample = 0.0
                self._others()

"""How ncnn's OpenMP threads wait: the bounded spin edgecv sets at import, the user's variables
winning over it, and the load-aware switch to a passively-waiting copy of the net."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from ncnn_helpers import RAW_ATOL, RAW_RTOL, YOLO11, exported

import edgecv
from edgecv_ncnn import contention
from edgecv_ncnn.contention import ContentionWatch, OthersCpu, run_delay_ns, usable_cpus
from edgecv_ncnn.session import DEFAULT_SPINCOUNT, NcnnSession

IMPORT_NCNN = (
    "import os\n"
    "from edgecv_ncnn.session import _ncnn\n"
    "_ncnn()\n"
    "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))\n"
)


def libgomp_settings(**env: str) -> tuple[dict[str, str], str]:
    """What ncnn's libgomp read at import (OMP_DISPLAY_ENV) and the environment left afterwards."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_NCNN],
        env={**base, **env, "OMP_DISPLAY_ENV": "VERBOSE"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shown = {}
    for line in result.stderr.splitlines():
        name, sep, value = line.strip().partition(" = ")
        if sep:
            shown[name] = value.strip("'")
    return shown, result.stdout.strip()


def test_default_is_a_bounded_spin_set_for_the_import_only() -> None:
    shown, left = libgomp_settings()
    assert shown["GOMP_SPINCOUNT"] == DEFAULT_SPINCOUNT == "10000"
    assert left == "None None"  # nothing leaks to later OpenMP runtimes or child processes


@pytest.mark.parametrize(
    ("env", "spincount"),
    [
        ({"GOMP_SPINCOUNT": "123"}, "123"),
        ({"OMP_WAIT_POLICY": "PASSIVE"}, "0"),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "30000000000"),
    ],
)
def test_the_users_variables_win(env: dict[str, str], spincount: str) -> None:
    shown, left = libgomp_settings(**env)
    assert shown["GOMP_SPINCOUNT"] == spincount
    assert left == f"{env.get('GOMP_SPINCOUNT')} {env.get('OMP_WAIT_POLICY')}"  # kept as set


def test_a_user_wait_policy_turns_the_switch_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = exported(tmp_path_factory, YOLO11)
    code = (
        "import sys, edgecv\n"
        f"model = edgecv.load({str(folder)!r}, backend='ncnn')\n"
        "print(model.session.watch is None)\n"
    )
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "True"


@pytest.mark.skipif(usable_cpus() < 2, reason="one CPU: ncnn runs one thread and never waits")
def test_switch_is_on_by_default_and_off_with_threads_or_adaptive_false(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = exported(tmp_path_factory, YOLO11)
    session = edgecv.load(folder, backend="ncnn").session
    assert isinstance(session, NcnnSession) and session.watch is not None
    assert session.shared_threads == max(1, usable_cpus() - 1)
    for options in ({"threads": 2}, {"adaptive": False}):
        session = edgecv.load(folder, backend="ncnn", **options).session
        assert isinstance(session, NcnnSession) and session.watch is None and session.shared_net is None


class FakeMachine:
    """Run-queue delay and other processes' CPU use as a test sets them; a clock it advances."""

    def __init__(self) -> None:
        self.now = 0.0
        self.delay_ns = 0
        self.waiting = 0.0  # share of each call spent waiting for a core
        self.others = 0.0  # CPUs

    def clock(self) -> float:
        return self.now

    def delay(self) -> int:
        return self.delay_ns

    def call(self, watch: ContentionWatch, seconds: float = 0.1) -> None:
        mark = watch.begin()
        self.now += seconds
        self.delay_ns += int(self.waiting * seconds * 1e9)
        watch.end(mark)

    def watch(self, spare: int = 0) -> ContentionWatch:
        return ContentionWatch(spare, self.delay, lambda: self.others, self.clock)


def test_watch_enters_on_delay_and_leaves_when_the_others_are_gone() -> None:
    machine = FakeMachine()
    watch = machine.watch()
    for _ in range(20):  # free cores: never shared
        machine.call(watch)
        assert not watch.contended()
    machine.waiting = 0.9  # one stalled call is not contention
    machine.call(watch)
    assert not watch.contended()
    machine.waiting = 0.0
    for _ in range(20):
        machine.call(watch)
    machine.waiting, machine.others = 0.6, 1.0  # a busy neighbour: calls wait 60 % of the time
    machine.call(watch)
    machine.call(watch)
    assert watch.contended()
    machine.waiting = 0.0  # on the copy the delay is no longer measured; the others still run
    for _ in range(20):
        machine.now += contention.SAMPLE_SECONDS
        assert watch.contended()
    machine.others = 0.1
    left = []
    for _ in range(10):
        machine.now += contention.SAMPLE_SECONDS
        left.append(not watch.contended())
    assert left[0] is False and left[-1] is True  # a few quiet samples in a row, not one
    assert not watch.shared


def test_watch_ignores_short_waits_spare_cpus_and_a_missing_procfs() -> None:
    machine = FakeMachine()
    watch = machine.watch(spare=2)
    machine.waiting = 0.05  # a kernel thread now and then
    for _ in range(20):
        machine.call(watch)
    assert not watch.contended()
    machine.waiting, machine.others = 0.6, 2.0  # two busy others on two spare CPUs: leaves soon
    machine.call(watch)
    machine.call(watch)
    assert watch.shared
    for _ in range(10):
        machine.now += contention.SAMPLE_SECONDS
        watch.contended()
    assert not watch.shared
    blind = ContentionWatch(0, lambda: None, lambda: 3.0, machine.clock)
    assert blind.begin() is None
    blind.end(None)
    assert not blind.contended()


@pytest.fixture
def busy_child() -> Iterator[None]:
    child = subprocess.Popen(
        [sys.executable, "-c", "print('go', flush=True)\nwhile True: pass"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "go"
        yield
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="procfs")
def test_procfs_measurements(busy_child: None) -> None:
    others = OthersCpu()
    assert others() is None  # the first call starts the window
    time.sleep(0.3)
    # A spinning child uses about a CPU while this test sleeps: it is not this process.
    used = others()
    assert used is not None and used >= 0.5
    before = run_delay_ns()
    assert before is not None and (run_delay_ns() or 0) >= before


@pytest.mark.skipif(usable_cpus() < 2, reason="one CPU: ncnn runs one thread and never waits")
def test_contended_calls_run_on_the_copy(tmp_path_factory: pytest.TempPathFactory) -> None:
    session = NcnnSession.open(exported(tmp_path_factory, YOLO11), {})
    assert session._shared_net is None
    tensor = np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)
    expected = session.run(tensor)
    machine = FakeMachine()
    session.watch = machine.watch()
    machine.waiting, machine.others = 0.6, 2.0
    machine.call(session.watch)  # two calls that waited for a core 60 % of their time
    machine.call(session.watch)
    assert session.watch.shared
    for _ in range(2):
        machine.now += contention.SAMPLE_SECONDS
        got = session.run(tensor)
        np.testing.assert_allclose(got[0], expected[0], atol=RAW_ATOL, rtol=RAW_RTOL)
    assert session._shared_net is not None
    assert int(session._shared_net.opt.num_threads) == max(1, usable_cpus() - 1)
    assert session.shared_net is session._shared_net  # loaded once
    machine.others = 0.0
    for _ in range(10):
        machine.now += contention.SAMPLE_SECONDS
        session.run(tensor)
    assert not session.watch.shared
    session.close()

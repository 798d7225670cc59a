"""The event log survives SIGKILL: acknowledged batches are kept whole, nothing is half-written.

A child process (event_writer_child.py) writes batches in a loop and prints each batch once add()
returned; the test kills it at random moments, 24 times, each new child continuing on the same file.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from edgecv.events.store import EventStore

CHILD = Path(__file__).with_name("event_writer_child.py")
RUNS = 24
STARTUP_TIMEOUT_S = 60  # generous: a loaded machine may take long to start Python


def run_until_killed(db: Path, run: int, rng: random.Random) -> list[str]:
    """Start a writer, SIGKILL it after a random delay; the lines it printed before dying."""
    command = [
        sys.executable,
        str(CHILD),
        str(db),
        str(run),
        str(rng.randrange(2**32)),
        rng.choice(["FULL", "NORMAL"]),
    ]
    lines: list[str] = []
    ready = threading.Event()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None

        def read() -> None:  # drains stdout so the child never blocks on a full pipe
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.strip())
                if line.strip() == "ready":
                    ready.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        if rng.random() < 0.25:
            time.sleep(rng.uniform(0.0, 0.3))  # may land while it starts, opens or recovers the log
        else:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not ready.wait(0.02) and proc.poll() is None and time.monotonic() < deadline:
                pass
            time.sleep(rng.uniform(0.02, 0.25))  # mid-write, most likely: the child does nothing else
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=STARTUP_TIMEOUT_S)
        reader.join(timeout=STARTUP_TIMEOUT_S)
        errors = proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL, f"writer {run} exited by itself ({proc.returncode}): {errors}"
    return lines


def test_acknowledged_batches_survive_sigkill_whole(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    rng = random.Random(20240607)
    acknowledged: dict[str, int] = {}  # "RUN-BATCH" -> batch size, for each batch add() returned
    for run in range(RUNS):
        for line in run_until_killed(db, run, rng):
            if line.startswith("ack "):
                _, key, size_text = line.split()
                acknowledged[key] = int(size_text)
    assert len(acknowledged) >= 10, "too few batches were written to test anything"

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        stored = [row[0] for row in conn.execute("SELECT id FROM events ORDER BY seq")]
    finally:
        conn.close()

    batches: dict[str, list[int]] = defaultdict(list)
    sizes: dict[str, set[int]] = defaultdict(set)
    for event_id in stored:
        run_text, number, index, declared = event_id.split("-")
        batches[f"{run_text}-{number}"].append(int(index))
        sizes[f"{run_text}-{number}"].add(int(declared))
    for key, indices in batches.items():  # all or nothing: every stored batch is whole
        (whole,) = sizes[key]
        assert indices == list(range(whole)), f"batch {key} is partial: {indices} of {whole}"
    for key, size in acknowledged.items():  # every acknowledged batch is stored
        assert key in batches and len(batches[key]) == size, f"acknowledged batch {key} was lost"
    for run in range(RUNS):
        # Each run stored batches 0..k: its acknowledged ones, plus at most one committed as it was killed.
        numbers = sorted(int(key.split("-")[1]) for key in batches if key.startswith(f"{run:03d}-"))
        acked = sum(key.startswith(f"{run:03d}-") for key in acknowledged)
        assert numbers == list(range(len(numbers))) and acked <= len(numbers) <= acked + 1, (
            run,
            numbers,
            acked,
        )
    assert stored == sorted(stored)  # insertion order kept across crashes

    with EventStore(db, max_rows=None) as store:  # opens cleanly and is fully usable
        assert store.stats().pending == len(stored)
        assert [event.id for event in store.pending(len(stored))] == stored
        assert store.acknowledge(stored[:10]) == min(10, len(stored))

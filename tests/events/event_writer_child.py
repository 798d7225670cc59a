"""Writes batches of events to an EventStore until it is killed: the child of test_event_crash.py.

Usage: event_writer_child.py DB RUN SEED SYNCHRONOUS. Event ids are RUN-BATCH-INDEX-SIZE, so the parent can
check every batch is whole. After each add() returns it prints "ack RUN-BATCH SIZE"; "ready" once open.
"""

from __future__ import annotations

import random
import sys

from edgecv.events.model import Event
from edgecv.events.store import EventStore


def main(db: str, run: int, seed: int, synchronous: str) -> None:
    rng = random.Random(seed)
    with EventStore(db, max_rows=None, synchronous=synchronous) as store:
        print("ready", flush=True)
        number = 0
        while True:
            size = rng.randint(1, 50)
            key = f"{run:03d}-{number:06d}"
            store.add(
                [
                    Event(
                        id=f"{key}-{index:02d}-{size:02d}",
                        time=1700000000.0 + number,
                        kind="detection",
                        model="crash",
                        source="child",
                        frame=number,
                        label="person",
                        class_id=0,
                        score=0.5,
                        box=(0.0, 0.0, float(index), float(size)),
                        track_id=None,
                    )
                    for index in range(size)
                ]
            )
            print(f"ack {key} {size}", flush=True)
            number += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])

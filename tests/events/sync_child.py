"""Runs a Syncer until it is killed: ``python sync_child.py EVENTS_DB URL``.

The subprocess of test_sync_http.py's SIGKILL test: its own EventStore on the parent's log, an
HttpSink to the parent's flaky receiver, short timeouts and backoffs.
"""

from __future__ import annotations

import sys
import time

from edgecv.events.sinks import HttpSink
from edgecv.events.store import EventStore
from edgecv.events.sync import Syncer


def main() -> None:
    db, url = sys.argv[1:3]
    syncer = Syncer(
        EventStore(db),
        HttpSink(url, timeout_s=0.4),
        batch_size=15,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        idle_poll_s=0.05,
    )
    syncer.start()
    while True:  # until SIGKILL: no clean shutdown is the point
        time.sleep(1)


if __name__ == "__main__":
    main()

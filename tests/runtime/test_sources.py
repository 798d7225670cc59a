"""Frame sources: files in order, realtime pacing, latest-frame live capture, reconnects, the watchdog
restart, and the one-line errors for sources that cannot be opened."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edgecv.runtime import sources
from edgecv.runtime.sources import (
    FILE_BUFFER,
    Capture,
    EndOfStream,
    Frame,
    FrameSource,
    SourceError,
    display_name,
    open_source,
    source_kind,
)

VIDEO = "videos/pedestrians_vtest_30s.mp4"
LOGGER = "edgecv.runtime.sources"
DEADLINE_S = 10.0  # generous: the machine is shared and small


@pytest.fixture
def video(assets: Path) -> Path:
    path = assets / VIDEO
    if not path.is_file():
        pytest.fail(f"{path} is missing")
    return path


class FakeCapture:
    """A live camera: a frame every ``period_s``, its pixels set to ``tag``.

    ``fail_reads`` reads return ``(False, None)`` after the first ``good_reads`` (a disconnect);
    ``block_after`` reads, it blocks inside ``read()`` until ``unblock`` is set (a stuck driver).
    """

    def __init__(
        self,
        tag: int = 1,
        *,
        period_s: float = 0.002,
        good_reads: int = 1,
        fail_reads: int = 0,
        block_after: int | None = None,
        opened: bool = True,
    ) -> None:
        self.tag = tag
        self.period_s = period_s
        self.good_reads = good_reads
        self.fail_reads = fail_reads
        self.block_after = block_after
        self.opened = opened
        self.reads = 0
        self.released = 0
        self.unblock = threading.Event()

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, npt.NDArray[np.uint8] | None]:
        self.reads += 1
        if self.block_after is not None and self.reads > self.block_after:
            self.unblock.wait()
        time.sleep(self.period_s)
        if self.reads > self.good_reads and self.fail_reads > 0:
            self.fail_reads -= 1
            return False, None
        return True, np.full((4, 6, 3), self.tag, np.uint8)

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released += 1


def opener_of(*captures: FakeCapture, calls: list[tuple[float, str | int]] | None = None) -> sources.Opener:
    """An opener handing out ``captures`` in turn (the last one again once they run out)."""
    queue = list(captures)

    def opener(spec: str | int) -> Capture:
        if calls is not None:
            calls.append((time.monotonic(), spec))
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return opener


def wait_for(condition: Callable[[], bool], seconds: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.005)


def read_all(source: FrameSource) -> list[Frame]:
    frames: list[Frame] = []
    while True:
        try:
            frame = source.read(timeout=DEADLINE_S)
        except EndOfStream:
            return frames
        assert frame is not None, "no frame within the deadline"
        frames.append(frame)


# --- files ----------------------------------------------------------------------------------------


def test_file_frames_in_order_then_end_of_stream(video: Path) -> None:
    source = open_source(str(video))
    assert (source.kind, source.live, source.name) == ("file", False, str(video))
    source.start()
    try:
        assert source.fps == 10.0
        frames = read_all(source)
        with pytest.raises(EndOfStream):  # and it stays ended
            source.read(timeout=0.01)
    finally:
        source.close()
    assert [f.index for f in frames] == list(range(300))
    assert all(f.image.shape == (576, 768, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(a.captured_at <= b.captured_at for a, b in pairwise(frames))
    assert abs(frames[0].timestamp - time.time()) < 60
    assert (source.stats.read, source.stats.dropped, source.stats.last_error) == (300, 0, None)
    reference = cv2.VideoCapture(str(video))
    for _ in range(150):
        reference.read()
    ok, frame_150 = reference.read()
    reference.release()
    assert ok and np.array_equal(frames[150].image, frame_150)


def test_file_decodes_ahead_into_a_bounded_buffer(video: Path) -> None:
    with open_source(str(video)) as source:
        wait_for(lambda: source.stats.read >= FILE_BUFFER)
        time.sleep(0.2)
        assert source.stats.read == FILE_BUFFER  # no drops: the thread waits for the consumer
        stamp = source.last_progress()
        assert time.monotonic() - stamp < 1.0  # waiting for the consumer is not a stall
        assert source.read(timeout=DEADLINE_S) is not None
        wait_for(lambda: source.stats.read == FILE_BUFFER + 1)


def test_file_restart_resumes_at_the_next_frame(video: Path) -> None:
    with open_source(str(video)) as source:
        first = [source.read(timeout=DEADLINE_S) for _ in range(10)]
        source.restart("test")
        frames = [f for f in first if f is not None] + read_all(source)
        assert source.stats.restarts == 1 and source.stats.last_error == "restarted: test"
    assert [f.index for f in frames] == list(range(300))
    reference = cv2.VideoCapture(str(video))
    for _ in range(40):
        reference.read()
    ok, frame_40 = reference.read()
    reference.release()
    assert ok and np.array_equal(frames[40].image, frame_40)


def test_realtime_file_is_paced_at_its_frame_rate(video: Path) -> None:
    with open_source(str(video), realtime=True) as source:
        assert source.latest_only and not source.live
        started = time.monotonic()
        frames = [source.read(timeout=DEADLINE_S) for _ in range(6)]
        elapsed = time.monotonic() - started
    assert all(f is not None for f in frames)
    got = [f for f in frames if f is not None]
    assert [f.index for f in got] == sorted({f.index for f in got})
    span = got[-1].captured_at - got[0].captured_at
    # 10 fps: at least 0.1 s per frame index; the upper bound only catches "not paced at all" bugs
    assert span >= 0.1 * (got[-1].index - got[0].index) - 0.02
    assert span >= 0.45
    assert elapsed < 5.0


def test_realtime_file_drops_frames_for_a_slow_consumer(video: Path) -> None:
    with open_source(str(video), realtime=True) as source:
        got = []
        for _ in range(4):
            time.sleep(0.25)
            frame = source.read(timeout=DEADLINE_S)
            assert frame is not None
            got.append(frame)
    gaps = [b.index - a.index for a, b in pairwise(got)]
    assert min(gaps) >= 1 and max(gaps) >= 2
    assert source.stats.dropped >= sum(g - 1 for g in gaps) > 0


# --- live sources ---------------------------------------------------------------------------------


def test_live_source_keeps_only_the_latest_frame_and_counts_drops() -> None:
    camera = FakeCapture(period_s=0.002)
    calls: list[tuple[float, str | int]] = []
    source = open_source("0", opener=opener_of(camera, calls=calls))
    assert (source.kind, source.live, source.name) == ("camera", True, "camera 0")
    source.start()
    try:
        assert source.fps == 30.0
        got = []
        for _ in range(8):
            time.sleep(0.03)
            frame = source.read(timeout=DEADLINE_S)
            assert frame is not None
            got.append(frame)
        newer = source.read(timeout=DEADLINE_S)  # waits for a frame newer than the last returned
        assert newer is not None and newer.index > got[-1].index
        got.append(newer)
    finally:
        source.close()
    assert calls[0][1] == 0  # the digit string is a camera index
    indices = [f.index for f in got]
    assert indices == sorted(set(indices))
    skipped = sum(b - a - 1 for a, b in pairwise(indices))
    stats = source.stats
    assert skipped > 0 and stats.dropped >= skipped
    assert stats.read - stats.dropped - len(got) in (0, 1)  # at most one frame still waiting
    assert camera.released == 1


def test_live_source_reconnects_with_exponential_backoff(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    camera = FakeCapture(good_reads=1, fail_reads=3)
    calls: list[tuple[float, str | int]] = []
    source = open_source(
        "rtsp://cam.local/live",
        opener=opener_of(camera, calls=calls),
        backoff_initial_s=0.05,
        backoff_max_s=0.12,
    )
    with source:
        first = source.read(timeout=DEADLINE_S)
        after = source.read(timeout=DEADLINE_S)
    assert first is not None and after is not None and after.index > first.index
    assert source.stats.reconnects == 3
    assert source.stats.last_error is not None and "disconnected" in source.stats.last_error
    opened_at = [t for t, _ in calls]
    assert len(opened_at) == 4  # the first open and three reconnects
    gaps = [b - a for a, b in pairwise(opened_at)]
    for gap, delay in zip(gaps, [0.05, 0.10, 0.12], strict=True):  # doubling, capped at the maximum
        assert gap >= delay - 0.005
    assert sum(gaps) < 5.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("reconnecting in" in m for m in warnings) == 3
    assert sum(m.endswith("reconnected") for m in warnings) == 3


def test_live_source_without_reconnect_ends() -> None:
    camera = FakeCapture(good_reads=1, fail_reads=1)
    with open_source("rtsp://cam.local/live", opener=opener_of(camera), reconnect=False) as source:
        assert source.read(timeout=DEADLINE_S) is not None
        with pytest.raises(EndOfStream):
            source.read(timeout=DEADLINE_S)
    assert source.stats.reconnects == 0 and source.stats.last_error == "read failed"


def test_restart_recovers_from_a_capture_stuck_in_read() -> None:
    stuck = FakeCapture(tag=1, block_after=3)
    fresh = FakeCapture(tag=2)
    source = open_source("/dev/video0", opener=opener_of(stuck, fresh))
    source.start()
    try:
        last = source.read(timeout=DEADLINE_S)
        while last is not None and last.index < 2:  # frames 0-2 come, then read() blocks for good
            last = source.read(timeout=DEADLINE_S)
        assert last is not None and last.index == 2
        stalled_since = source.last_progress()
        assert source.read(timeout=0.3) is None
        assert source.last_progress() == stalled_since  # the thread is stuck: no progress

        source.restart("no frame for 0.3 s")
        frame = source.read(timeout=DEADLINE_S)
        assert frame is not None and frame.index >= 3 and int(frame.image[0, 0, 0]) == 2
        assert source.last_progress() > stalled_since
        assert source.stats.restarts == 1
        assert source.stats.last_error == "restarted: no frame for 0.3 s"

        stuck.unblock.set()  # the abandoned read returns late: its frame is ignored, its capture released
        wait_for(lambda: stuck.released == 1)
        later = [source.read(timeout=DEADLINE_S) for _ in range(5)]
        assert all(f is not None and int(f.image[0, 0, 0]) == 2 for f in later)
    finally:
        stuck.unblock.set()
        source.close()
    assert fresh.released == 1
    source.close()  # idempotent
    with pytest.raises(EndOfStream):
        source.read(timeout=0.01)


def test_fake_rtsp_stream_through_the_opener(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    url = "rtsp://admin:s3cret@192.168.1.20:554/stream1"
    calls: list[tuple[float, str | int]] = []
    with open_source(url, opener=opener_of(FakeCapture(), calls=calls)) as source:
        assert source.read(timeout=DEADLINE_S) is not None
    assert calls[0][1] == url  # the opener gets the credentials
    assert (source.kind, source.live) == ("stream", True)
    assert source.name == "rtsp://192.168.1.20:554/stream1"
    assert (
        "s3cret" not in caplog.text
        and "rtsp://192.168.1.20:554/stream1" in caplog.text
        and "admin" not in caplog.text
    )


def test_first_open_failure_is_an_error_even_with_reconnect() -> None:
    calls: list[tuple[float, str | int]] = []
    source = open_source(
        "rtsp://user:pw@cam.local/x", opener=opener_of(FakeCapture(opened=False), calls=calls)
    )
    with pytest.raises(SourceError) as caught:
        source.start()
    assert str(caught.value).startswith("Stream rtsp://cam.local/x cannot be opened. Check the URL")
    assert len(calls) == 1

    def refused(spec: str | int) -> Capture:
        raise ConnectionError("connection refused")

    with pytest.raises(SourceError, match=r"cannot be opened \(ConnectionError: connection refused\)"):
        open_source("http://cam.local/mjpg", opener=refused).start()
    no_frame = FakeCapture(good_reads=0, fail_reads=1)
    with pytest.raises(SourceError, match=r"^Camera 3 opened but gave no frame"):
        open_source(3, opener=opener_of(no_frame)).start()
    assert no_frame.released == 1


# --- opening real things that are not there -------------------------------------------------------


def test_missing_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError) as caught:
        open_source(str(missing)).start()
    assert str(caught.value) == f"Video file not found: {missing}. Check the path."
    assert capfd.readouterr().err == ""


def test_corrupt_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01 not a video " * 500)
    with pytest.raises(SourceError) as caught:
        open_source(str(garbage)).start()
    message = str(caught.value)
    assert message.startswith(f"Cannot decode video {garbage}: ")
    assert message.endswith("Check it plays with ffprobe/ffplay; re-encode to H.264 mp4.")
    assert capfd.readouterr().err == ""  # FFmpeg's "moov atom not found" is silenced too


@pytest.mark.parametrize("spec", [97, "97", "/dev/video97"])
def test_missing_camera(spec: str | int, capfd: pytest.CaptureFixture[str]) -> None:
    level = cv2.utils.logging.getLogLevel()
    with pytest.raises(SourceError) as caught:
        open_source(spec).start()
    assert str(caught.value) == (
        f"Camera {spec} cannot be opened. List cameras with `ls /dev/video*` (or v4l2-ctl --list-devices); "
        "check permissions (video group)."
    )
    assert capfd.readouterr().err == ""
    assert cv2.utils.logging.getLogLevel() == level  # OpenCV's logging restored


def test_gstreamer_pipeline_without_gstreamer_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_has_gstreamer", lambda: False)
    pipeline = "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280 ! nvvidconv ! appsink"
    with pytest.raises(SourceError, match=r"built without GStreamer\. Use an OpenCV built with it"):
        open_source(pipeline).start()


def test_gstreamer_pipeline_opened_with_cap_gstreamer(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[object, ...]] = []

    def fake_video_capture(*args: object) -> FakeCapture:
        seen.append(args)
        return FakeCapture()

    monkeypatch.setattr(cv2, "VideoCapture", fake_video_capture)
    pipeline = "videotestsrc ! videoconvert ! appsink"
    sources.open_capture(pipeline)
    sources.open_capture(2)
    assert seen == [(pipeline, cv2.CAP_GSTREAMER), (2,)]


# --- naming -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ("video.mp4", "file", "video.mp4"),
        (0, "camera", "camera 0"),
        ("2", "camera", "camera 2"),
        ("/dev/video1", "camera", "/dev/video1"),
        ("rtsp://user:pass@host/s", "stream", "rtsp://host/s"),
        ("rtsp://host:554/s", "stream", "rtsp://host:554/s"),
        ("https://u:p@example.com/cam.mjpg", "stream", "https://example.com/cam.mjpg"),
        ("rtmp://live.example.com/app/key", "stream", "rtmp://live.example.com/app/key"),
        (
            "rtspsrc location=rtsp://u:p@cam/x ! decodebin ! appsink",
            "gstreamer",
            "rtspsrc location=rtsp://cam/x ! decodebin ! appsink",
        ),
    ],
)
def test_kinds_and_names(spec: str | int, kind: str, name: str) -> None:
    assert source_kind(spec) == kind
    assert display_name(open_source(spec).target) == name == open_source(spec).name
    assert open_source(spec).live is (kind != "file")

"""``edgecv run``: the detector as a long-running service on a video file, camera or stream."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

import click

from edgecv.cli.options import backend_options, model_options, parse_class_ids

if TYPE_CHECKING:
    from contextlib import ExitStack

    from edgecv.events.policy import EventPolicy
    from edgecv.model import Model
    from edgecv.runtime.loop import RunConfig, Runtime
    from edgecv.runtime.outputs import VideoOutput, WindowOutput
    from edgecv.runtime.stats import RunStats
    from edgecv.runtime.thermal import ThermalGovernor


class _Output(Protocol):
    def close(self) -> None: ...


OutputT = TypeVar("OutputT", bound=_Output)


class RunOptions(NamedTuple):
    """``edgecv run``'s options, as click parsed them."""

    source: str
    model: str | None
    backend: str
    imgsz: int | None
    arch: str | None
    names: str | None
    threads: int | None
    option_pairs: tuple[str, ...]
    conf: float
    iou: float
    classes: str | None
    skip: int
    track: bool
    as_json: bool
    save: str | None
    show: bool
    max_frames: int | None
    duration: float | None
    realtime: bool
    events_db: str | None
    event_classes: str | None
    event_min_score: float
    event_new_tracks: bool
    event_zone: str | None
    retention_rows: int
    retention_mb: float | None
    sync_url: str | None
    thermal: str
    stall_timeout: float
    in_flight: int | None
    stats_json: str | None


@click.command("run")
@click.argument("source")
@model_options
@click.option("--conf", type=float, default=0.25, show_default=True, help="Minimum score.")
@click.option("--iou", type=float, default=0.45, show_default=True, help="NMS IoU threshold.")
@click.option("--classes", default=None, help="Comma-separated class ids to detect.")
@click.option(
    "--skip", type=click.IntRange(min=1), default=1, show_default=True, help="Infer every K-th frame."
)
@click.option("--track", is_flag=True, help="Track objects (stable ids; boxes on skipped frames).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per frame.")
@click.option(
    "--save",
    default=None,
    help="Record the annotated video: .mkv or .avi grow as one file that stays playable if the process "
    "is killed (all but the last seconds); .mp4 or .mov are cut into closed 10 s segments "
    "NAME-0000.mp4, NAME-0001.mp4, ... (a kill loses the open one).",
)
@click.option("--show", is_flag=True, help="Show the annotated video in a window (q or Esc stops).")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after N frames.")
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), default=None, help="Stop after S seconds."
)
@click.option("--realtime", is_flag=True, help="Read a file at its own frame rate (like a camera).")
@click.option("--events", "events_db", default=None, help="SQLite event log (created if missing).")
@click.option(
    "--event-classes", default=None, help="Labels that make events, e.g. person,car [default: all]."
)
@click.option(
    "--event-min-score", type=float, default=0.5, show_default=True, help="Minimum score for an event."
)
@click.option("--event-new-tracks", is_flag=True, help="One event per new track id (needs --track).")
@click.option("--event-zone", default=None, help="Polygon 'x,y;x,y;x,y': events when a track enters it.")
@click.option(
    "--retention-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Unsynced events kept at most; the oldest are dropped and counted beyond.",
)
@click.option(
    "--retention-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Event log size limit in MB.",
)
@click.option(
    "--sync", "sync_url", default=None, help="Ship events to http(s)://... or mqtt://host:port/topic."
)
@click.option(
    "--thermal",
    default="75:85:0.2:80",
    show_default=True,
    help="Throttle policy SLOW_C:STOP_C:MIN_FACTOR:RESUME_C, or 'off'.",
)
@click.option(
    "--stall-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Watchdog: restart a source or model silent for this many seconds.",
)
@click.option(
    "--in-flight",
    type=click.IntRange(min=1),
    default=None,
    help="Frames in the model at once: the next is preprocessed while one infers [default: 2, "
    "or an accelerator's queue depth]; 1 runs them one at a time (lowest latency).",
)
@click.option("--stats-json", default=None, help="Also write the final statistics as JSON to this file.")
def run_command(**options: Any) -> None:
    """Run a detector on SOURCE: a video file, camera index, /dev/video*, RTSP/HTTP URL or GStreamer
    pipeline, until it ends, a limit is reached, or Ctrl-C / SIGTERM / SIGHUP (SIGUSR1 prints
    statistics)."""
    import contextlib

    from edgecv.runtime.loop import Runtime
    from edgecv.runtime.outputs import VideoOutput
    from edgecv.runtime.sources import open_source

    opts = RunOptions(**options)
    classes = parse_class_ids(opts.classes)
    backend = backend_options(opts.threads, opts.option_pairs)
    config, policy, governor = _run_config(opts), _event_policy(opts), _governor(opts)
    if opts.stats_json:  # fail now, not after a run of hours
        _check_output_file(opts.stats_json, "--stats-json", "stats.json")
    started: list[Runtime] = []  # the window's q / Esc stops the runtime once there is one
    with contextlib.ExitStack() as stack:
        outputs: list[object] = []
        if opts.show:  # before anything is opened: no display is the most likely mistake
            outputs.append(_closed_by(stack, _window(lambda: started[0].stop() if started else None)))
        # Started here: fails fast on a bad source, before the model loads, and tells the frame rate.
        source = stack.enter_context(open_source(opts.source, realtime=opts.realtime))
        model = stack.enter_context(_load_model(opts, classes, backend))
        outputs += _outputs(opts, source.fps, stack)
        runtime = stack.enter_context(
            Runtime(
                model,
                source,
                config,
                events=opts.events_db,
                event_policy=policy,
                sink=opts.sync_url,
                thermal=governor,
                plugins=outputs,
            )
        )
        started.append(runtime)
        runtime.install_signal_handlers()
        stats = runtime.run()
    _report(opts, stats, [o for o in outputs if isinstance(o, VideoOutput)])
    # Everything is closed and reported: a late Ctrl-C ends the process as the OS does, rather than
    # as a KeyboardInterrupt in interpreter shutdown ("Exception ignored", a traceback).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_config(opts: RunOptions) -> RunConfig:
    from edgecv.errors import ConfigError
    from edgecv.runtime.loop import RunConfig

    if opts.sync_url and not opts.events_db:
        raise ConfigError("--sync needs an event log to send from", "Add --events events.db.")
    if (opts.event_new_tracks or opts.event_zone) and not opts.track:
        raise ConfigError("--event-new-tracks and --event-zone follow track ids", "Add --track.")
    return RunConfig(
        skip=opts.skip,
        track=opts.track,
        max_frames=opts.max_frames,
        duration_s=opts.duration,
        stall_timeout_s=opts.stall_timeout,
        in_flight=opts.in_flight,
        event_max_rows=opts.retention_rows,
        event_max_mb=opts.retention_mb,
    )


def _event_policy(opts: RunOptions) -> EventPolicy:
    from edgecv.events.policy import EventPolicy

    return EventPolicy.parse(opts.event_classes, opts.event_min_score, opts.event_new_tracks, opts.event_zone)


def _governor(opts: RunOptions) -> ThermalGovernor | bool:
    from edgecv.runtime.thermal import ThermalGovernor, parse_policy

    policy = parse_policy(opts.thermal)
    return ThermalGovernor(policy) if policy is not None else False


def _load_model(opts: RunOptions, classes: tuple[int, ...] | None, options: dict[str, Any]) -> Model:
    import edgecv
    from edgecv.registry import DEFAULT_MODEL

    return edgecv.load(
        opts.model or DEFAULT_MODEL,
        opts.backend,
        arch=opts.arch,
        imgsz=opts.imgsz,
        names=opts.names,
        conf=opts.conf,
        iou=opts.iou,
        classes=classes,
        **options,
    )


def _window(stop: Callable[[], None]) -> WindowOutput:
    from edgecv.runtime.outputs import WindowOutput

    return WindowOutput(stop)


def _outputs(opts: RunOptions, fps: float | None, stack: ExitStack) -> list[object]:
    """The result outputs (each closed by ``stack``); the saved video keeps the source's rate."""
    from edgecv.runtime.outputs import JsonLinesOutput, StatusLineOutput, VideoOutput

    outputs: list[object] = []
    if opts.as_json:
        outputs.append(_closed_by(stack, JsonLinesOutput()))
    if opts.save:
        outputs.append(_closed_by(stack, VideoOutput(opts.save, fps)))
    if not (opts.as_json or opts.save or opts.show):
        outputs.append(_closed_by(stack, StatusLineOutput()))
    return outputs


def _closed_by(stack: ExitStack, output: OutputT) -> OutputT:
    """``output``, closed by ``stack`` (after a failure or Ctrl-C too: a saved video stays playable)."""
    stack.callback(output.close)
    return output


def _check_output_file(path: str, option: str, example: str) -> None:
    from pathlib import Path

    from edgecv.files import check_output_file

    check_output_file(Path(path), option, example)


def _report(opts: RunOptions, stats: RunStats, videos: list[VideoOutput]) -> None:
    import json
    from pathlib import Path

    from edgecv.errors import ConfigError
    from edgecv.files import atomic_target

    click.echo(stats.format(), err=True)
    for video in videos:
        files = video.files
        if len(files) == 1:
            click.echo(f"annotated video: {files[0]}", err=True)
        elif files:
            click.echo(f"annotated video: {files[0]} ... {files[-1]} ({len(files)} segments)", err=True)
    if opts.stats_json:
        try:
            with atomic_target(Path(opts.stats_json)) as partial:
                partial.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")
        except OSError as exc:
            raise ConfigError(
                f"Cannot write --stats-json {opts.stats_json}: {exc.strerror or exc}",
                "Choose a writable path.",
            ) from exc

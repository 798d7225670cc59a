"""``edgecv run``: the detector as a long-running service on a video file, camera or stream."""

from __future__ import annotations

from typing import Any

import click

from edgecv.cli.options import backend_options, model_options, parse_class_ids


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
@click.option("--save", default=None, help="Write the annotated video here (.mp4 or .avi).")
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
@click.option("--stats-json", default=None, help="Also write the final statistics as JSON to this file.")
def run_command(
    source: str,
    model: str | None,
    backend: str,
    imgsz: int | None,
    arch: str | None,
    names: str | None,
    threads: int | None,
    conf: float,
    iou: float,
    classes: str | None,
    skip: int,
    track: bool,
    as_json: bool,
    save: str | None,
    show: bool,
    max_frames: int | None,
    duration: float | None,
    realtime: bool,
    events_db: str | None,
    event_classes: str | None,
    event_min_score: float,
    event_new_tracks: bool,
    event_zone: str | None,
    retention_rows: int,
    retention_mb: float | None,
    sync_url: str | None,
    thermal: str,
    stall_timeout: float,
    stats_json: str | None,
) -> None:
    """Run a detector on SOURCE: a video file, camera index, /dev/video*, RTSP/HTTP URL or GStreamer
    pipeline, until it ends, a limit is reached, or Ctrl-C / SIGTERM (SIGUSR1 prints statistics)."""
    import json
    from pathlib import Path

    import edgecv
    from edgecv.errors import ConfigError
    from edgecv.events.policy import EventPolicy
    from edgecv.files import atomic_target
    from edgecv.registry import DEFAULT_MODEL
    from edgecv.runtime.loop import RunConfig, Runtime
    from edgecv.runtime.outputs import JsonLinesOutput, StatusLineOutput, VideoOutput, WindowOutput
    from edgecv.runtime.sources import open_source
    from edgecv.runtime.thermal import ThermalGovernor, parse_policy

    class_ids = parse_class_ids(classes)
    if sync_url and not events_db:
        raise ConfigError("--sync needs an event log to send from", "Add --events events.db.")
    if (event_new_tracks or event_zone) and not track:
        raise ConfigError("--event-new-tracks and --event-zone follow track ids", "Add --track.")
    policy = EventPolicy.parse(event_classes, event_min_score, event_new_tracks, event_zone)
    thermal_policy = parse_policy(thermal)
    governor = ThermalGovernor(thermal_policy) if thermal_policy is not None else False
    outputs: list[Any] = []
    runtime: Runtime | None = None
    if show:  # before anything is opened: no display is the most likely mistake
        outputs.append(WindowOutput(lambda: runtime.stop() if runtime is not None else None))
    video_source = open_source(source, realtime=realtime)
    store = None
    sink = None
    try:
        if events_db:
            from edgecv.events.store import EventStore

            store = EventStore(events_db, max_rows=retention_rows, max_mb=retention_mb)
        if sync_url:
            from edgecv.events.sinks import open_sink

            sink = open_sink(sync_url)
        video_source.start()  # fails fast on a bad source, and tells the video's frame rate
        loaded = edgecv.load(
            model or DEFAULT_MODEL,
            backend,
            arch=arch,
            imgsz=imgsz,
            names=names,
            conf=conf,
            iou=iou,
            classes=class_ids,
            **backend_options(threads),
        )
        if as_json:
            outputs.append(JsonLinesOutput())
        if save:
            outputs.append(VideoOutput(save, video_source.fps))
        runtime = Runtime(
            loaded,
            video_source,
            RunConfig(
                skip=skip,
                track=track,
                max_frames=max_frames,
                duration_s=duration,
                stall_timeout_s=stall_timeout,
            ),
            events=store,
            event_policy=policy,
            sink=sink,
            thermal=governor,
            plugins=outputs,
        )
        if not (as_json or save or show):
            outputs.append(StatusLineOutput())
            runtime.add_plugin(outputs[-1])
        runtime.install_signal_handlers()
        stats = runtime.run()
    finally:
        video_source.close()
        for output in outputs:
            output.close()
        if sink is not None:
            sink.close()
        if store is not None:
            store.close()
    click.echo(stats.format(), err=True)
    if save:
        click.echo(f"annotated video: {save}", err=True)
    if stats_json:
        with atomic_target(Path(stats_json)) as partial:
            partial.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")

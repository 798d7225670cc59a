"""``edgecv bench``: latency, overhead against the bare runtime, memory and power, per model x backend;
pipelined throughput for backends that keep frames in flight."""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

import click

from edgecv.cli.options import option_flag

if TYPE_CHECKING:
    from pathlib import Path

    from edgecv.model import Model
    from edgecv.progress import Progress

BLOCK = 10
"""Timed calls per model before the next model's turn (each block opens with one untimed call)."""


@click.command("bench")
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    help="Model file, folder or registry name; repeat to compare [default: yolox-nano, inside edgecv].",
)
@click.option(
    "--backend", "-b", "backends", multiple=True, help="Backend name; repeat to compare [default: auto]."
)
@click.option("--imgsz", type=int, default=None, help="Input size for models with a dynamic input.")
@click.option("--arch", default=None, help="Force the output decoder: yolov8, yolov5, yolox, end2end.")
@click.option("--threads", type=int, default=None, help="Runtime threads (the same as -o threads=N).")
@option_flag("--option", "-o")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed calls.")
@click.option("--runs", type=click.IntRange(min=1), default=100, show_default=True, help="Timed calls.")
@click.option("--source", default=None, help="Image to run on [default: <assets>/images/bus.jpg].")
@click.option("--data", default=None, help="Dataset folder: also report mAP50-95 (as `edgecv val`).")
@click.option(
    "--in-flight",
    type=click.IntRange(min=1),
    default=None,
    help="Frames kept in flight in the pipelined run of a backend that queues frames "
    "[default: the session's depth].",
)
@click.option(
    "--sequential",
    is_flag=True,
    help=f"Measure one model after another instead of alternating them in blocks of {BLOCK} calls.",
)
@click.option(
    "--video",
    default=None,
    help="Instead: `edgecv run` throughput on this video against the bare inference rate, "
    "alternated in rounds.",
)
@click.option(
    "--skip", "skips", type=click.IntRange(min=1), multiple=True, help="With --video: skip values [1, 3]."
)
@click.option("--track", is_flag=True, help="With --video: track between inferences.")
@click.option(
    "--frames",
    type=click.IntRange(min=2),
    default=150,
    show_default=True,
    help="With --video: frames per round.",
)
@click.option(
    "--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="With --video: rounds."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_command(
    models: tuple[str, ...],
    backends: tuple[str, ...],
    imgsz: int | None,
    arch: str | None,
    threads: int | None,
    option_pairs: tuple[str, ...],
    warmup: int,
    runs: int,
    source: str | None,
    data: str | None,
    in_flight: int | None,
    sequential: bool,
    video: str | None,
    skips: tuple[int, ...],
    track: bool,
    frames: int,
    rounds: int,
    as_json: bool,
) -> None:
    """Measure latency, overhead, memory and power of models on one image.

    Reports p50/p95/mean latency end to end (decoded frame in, detections out) and per stage, the
    bare runtime call on the same tensor and the overhead ratio, FPS, load time, peak RSS
    (process-wide: every model loaded in the run counts), model size, and average power and
    temperature where the device exposes them. Several --model/--backend give a comparison table.
    A backend that keeps frames in flight (an accelerator's queue) also runs as many frames through
    Model.submit with --in-flight of them outstanding, and reports that pipelined throughput.

    End-to-end and bare calls alternate call by call, and several models alternate in blocks of
    calls, so a noisy machine affects them alike; medians are reported.
    """
    from edgecv import registry, sensors
    from edgecv.bench import benchmark, describe_device, format_report, result_record
    from edgecv.bench.device import load_average
    from edgecv.cli.options import backend_options
    from edgecv.images import read_image
    from edgecv.progress import terminal_progress
    from edgecv.registry import DEFAULT_MODEL

    options = backend_options(threads, option_pairs)
    progress = terminal_progress(enabled=not as_json)
    if video is not None:
        if in_flight is not None:
            from edgecv.errors import ConfigError

            raise ConfigError(
                "--in-flight sets the pipelined run of the image bench, not --video",
                "With --video the runtime keeps the session's depth in flight; leave out --in-flight.",
            )
        _bench_video(
            video, models, backends, imgsz, arch, options, skips, track, frames, rounds, as_json, progress
        )
        return
    image_path = registry.sample_image(source)
    image = read_image(image_path)
    validate = _validator() if data is not None else None
    paths = [registry.resolve(model) for model in models or (DEFAULT_MODEL,)]
    loaded = _load_all(paths, backends or ("auto",), imgsz=imgsz, arch=arch, options=options)

    device = describe_device()
    load_before = load_average()
    meter = sensors.open_power_meter()
    temperature_before = sensors.read_temperature()
    measurements = benchmark(
        loaded,
        image,
        warmup=warmup,
        runs=runs,
        meter=meter,
        interleave=not sequential,
        block=BLOCK,
        progress=progress,
        in_flight=in_flight,
    )
    temperature_after = sensors.read_temperature()
    load_after = load_average()

    first = measurements[0].e2e.p50
    results = []
    for model, measurement in zip(loaded, measurements, strict=True):
        accuracy = None
        if validate is not None and data is not None:
            scores = validate(model, data, progress=progress)
            accuracy = {"data": data, "map50_95": scores.map50_95, "map50": scores.map50}
        results.append(
            result_record(
                model,
                measurement,
                options=options,
                speedup=first / measurement.e2e.p50,
                accuracy=accuracy,
            )
        )
    report = {
        "device": device,
        "run": {
            "source": str(image_path),
            "image_shape": list(image.shape[:2]),
            "warmup": warmup,
            "runs": runs,
            "order": "sequential" if sequential else "interleaved",
            "block": BLOCK,
            "in_flight": in_flight,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "power_meter": _meter_record(meter),
            "temperature_c": _temperature_record(temperature_before, temperature_after),
        },
        "results": results,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_report(report))


def _bench_video(
    video: str,
    models: tuple[str, ...],
    backends: tuple[str, ...],
    imgsz: int | None,
    arch: str | None,
    options: dict[str, Any],
    skips: tuple[int, ...],
    track: bool,
    frames: int,
    rounds: int,
    as_json: bool,
    progress: Progress,
) -> None:
    from pathlib import Path

    import edgecv
    from edgecv.bench.device import describe_device, device_line, load_average
    from edgecv.bench.report import load_line
    from edgecv.errors import ConfigError, ImageError
    from edgecv.registry import DEFAULT_MODEL
    from edgecv.runtime.throughput import format_video_report, video_throughput

    if len(models) > 1 or len(backends) > 1:
        raise ConfigError("--video measures one model on one backend", "Pass a single --model and --backend.")
    path = Path(video)
    if not path.is_file():
        raise ImageError(f"Video file not found: {path}", "Check the path.")
    model = edgecv.load(
        models[0] if models else DEFAULT_MODEL,
        backends[0] if backends else "auto",
        imgsz=imgsz,
        arch=arch,
        **options,
    )
    device = describe_device()
    load_before = load_average()
    results = video_throughput(
        model, path, skips=skips or (1, 3), track=track, frames=frames, rounds=rounds, progress=progress
    )
    run = {"load_average_before": load_before, "load_average_after": load_average()}
    if as_json:
        record = {"video": str(path), "frames": frames, "device": device, "run": run}
        click.echo(json.dumps({**record, "results": [r.to_dict() for r in results]}))
    else:
        header = [f"device       {device_line(device)}", *filter(None, [load_line(run)])]
        click.echo(format_video_report(results, path, frames, header))


def _validator() -> Any:
    """``edgecv.evaluation.validate``, imported only when --data asks for accuracy."""
    import importlib

    from edgecv.errors import ConfigError

    try:
        return importlib.import_module("edgecv.evaluation").validate
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"--data needs edgecv.evaluation.validate (from `edgecv val`), which cannot be imported ({exc})",
            "Install an edgecv version with `edgecv val`, or leave out --data.",
        ) from exc


def _load_all(
    paths: list[Path],
    backends: tuple[str, ...],
    *,
    imgsz: int | None,
    arch: str | None,
    options: dict[str, Any],
) -> list[Model]:
    """Every model x backend; with several backends, pairs a backend cannot read are skipped."""
    import edgecv
    from edgecv.errors import BackendError, ModelError

    loaded = []
    skipped: list[Exception] = []
    for path, backend in itertools.product(paths, backends):
        try:
            loaded.append(edgecv.load(path, backend, imgsz=imgsz, arch=arch, **options))
        except (BackendError, ModelError) as exc:
            if len(backends) == 1:
                raise
            click.echo(f"warning: skipping {path.name} on {backend}: {exc}", err=True)
            skipped.append(exc)
    if not loaded:
        raise skipped[0]
    return loaded


def _meter_record(meter: Any) -> dict[str, Any]:
    from edgecv.sensors import Unavailable

    if isinstance(meter, Unavailable):
        return {"source": None, "description": None, "reason": meter.reason}
    return {"source": meter.source, "description": meter.description, "reason": None}


def _temperature_record(before: Any, after: Any) -> dict[str, Any]:
    from edgecv.sensors import Unavailable

    if isinstance(before, Unavailable):
        return {"before": None, "after": None, "source": None, "reason": before.reason}
    return {
        "before": round(before.celsius, 1),
        "after": None if isinstance(after, Unavailable) else round(after.celsius, 1),
        "source": before.source,
        "reason": None,
    }

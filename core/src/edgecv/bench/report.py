"""Benchmark results as JSON-ready records, and the plain-text report printed from those records.

The text is rendered from the same dictionaries ``--json`` prints, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecv.bench.device import device_line
from edgecv.devices import device_summary

if TYPE_CHECKING:
    from edgecv.bench.runner import Measurement
    from edgecv.model import Model

RSS_NOTE = "process-wide peak (getrusage): Python, the runtimes and every model loaded in this run"
STAGES = ("preprocess", "infer", "postprocess")


def model_size_bytes(path: Path) -> int:
    """Size of a model file, or of every file in a model folder."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def result_record(
    model: Model,
    measurement: Measurement,
    *,
    options: Mapping[str, Any] | None = None,
    speedup: float | None = None,
    accuracy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of the report: the model, its latencies, overhead, memory, power and accuracy."""
    spec = model.spec
    size = model_size_bytes(spec.path)
    power = measurement.power
    latency: dict[str, Any] = {"e2e": measurement.e2e.to_dict()}
    for stage in STAGES:
        latency[stage] = getattr(measurement, stage).to_dict()
    latency["bare"] = measurement.bare.to_dict() if measurement.bare else None
    providers = getattr(model.session, "providers", None)
    pipelined = measurement.pipelined
    chip = measurement.chip
    return {
        "model": str(spec.path),
        "name": spec.path.name,
        "backend": spec.backend,
        "arch": spec.arch,
        "imgsz": list(spec.input.size),
        "input_dtype": spec.input.dtype,
        "options": dict(options or {}),
        "providers": list(providers) if isinstance(providers, (list, tuple)) else None,
        "size_bytes": size,
        "size_mb": round(size / 1e6, 3),
        "load_ms": round(model.load_ms, 3),
        "warmup": measurement.warmup,
        "runs": measurement.runs,
        "latency_ms": latency,
        "fps": round(measurement.fps, 3),
        "overhead": _rounded(measurement.overhead, 4),
        "overhead_paired": _rounded(measurement.overhead_paired, 4),
        "bare_reason": measurement.bare_reason,
        "speedup": _rounded(speedup, 4),
        "detections": measurement.detections,
        "peak_rss_mb": _rounded(measurement.peak_rss_mb, 1),
        "power": {
            "watts": _rounded(power.watts),
            "fps_per_watt": _rounded(measurement.fps_per_watt),
            "source": power.source,
            "samples": power.samples,
            "reason": power.reason,
        },
        "accuracy": dict(accuracy) if accuracy is not None else None,
        "pipelined": None
        if pipelined is None
        else {
            "in_flight": pipelined.in_flight,
            "fps": round(pipelined.fps, 3),
            "frames": pipelined.frames,
            "seconds": round(pipelined.seconds, 4),
        },
        "pipelined_reason": measurement.pipelined_reason,
        "device": chip.device if chip is not None else None,
        "device_temperature_c": None
        if chip is None
        else {
            "before": _rounded(chip.before, 1),
            "after": _rounded(chip.after, 1),
            "source": chip.source,
        },
    }


# --- text -----------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _number(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell; the first ``left`` columns left-aligned, the rest right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if index < left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return [line(headers), line(["-" * width for width in widths]), *(line(row) for row in rows)]


def _power_text(record: Mapping[str, Any]) -> str:
    power = record["power"]
    if power["watts"] is None:
        return f"n/a ({power['reason']})"
    fps_per_watt = power["fps_per_watt"]
    return f"{power['watts']:.2f} W average, {fps_per_watt:.2f} FPS/W ({power['source']})"


def _temperature_text(run: Mapping[str, Any]) -> str:
    temperature = run.get("temperature_c") or {}
    if temperature.get("before") is None:
        return f"n/a ({temperature.get('reason', 'not read')})"
    after = temperature.get("after")
    after_text = "n/a" if after is None else f"{after:.1f} °C"
    return f"{temperature['before']:.1f} °C before, {after_text} after ({temperature.get('source')})"


def _accelerators(records: Sequence[Mapping[str, Any]]) -> str:
    """The accelerators the models ran on (``DeviceSession``), once each: ``; hailo: Hailo-8L, ...``."""
    seen = []
    for record in records:
        if record.get("device"):  # absent from records written before it was added
            text = f"{record['backend']}: {device_summary(record['device'])}"
            if text not in seen:
                seen.append(text)
    return "".join(f"; {text}" for text in seen)


def _chip_temperatures(records: Sequence[Mapping[str, Any]]) -> str:
    """``; Hailo-8L chip 51.0 °C before, 53.0 °C after`` for the accelerators the models ran on
    (every model's chip is read at the same moments: models sharing a chip read the same)."""
    parts: list[str] = []
    for record in records:
        chip = record.get("device_temperature_c")
        if not chip:
            continue
        before, after = ("n/a" if chip[key] is None else f"{chip[key]:.1f} °C" for key in ("before", "after"))
        text = f"; {chip['source']} {before} before, {after} after"
        if text not in parts:
            parts.append(text)
    return "".join(parts)


def _pipelined_text(record: Mapping[str, Any]) -> str:
    pipelined = record.get("pipelined")
    if not pipelined:
        return f"n/a ({record.get('pipelined_reason') or 'not measured'})"
    return (
        f"{pipelined['fps']:.2f} FPS with {pipelined['in_flight']} frames in flight "
        f"({pipelined['frames']} frames through Model.submit)"
    )


def _run_lines(report: Mapping[str, Any]) -> list[str]:
    run = report.get("run", {})
    lines = [f"device       {device_line(report['device'])}{_accelerators(report['results'])}"]
    if run:
        shape = run.get("image_shape") or [0, 0]
        order = "alternated call by call"
        if len(report["results"]) > 1:
            order += (
                f"; models alternated in blocks of {run.get('block')} calls"
                if run.get("order") == "interleaved"
                else "; one model after another"
            )
        lines.append(f"source       {Path(run['source']).name} ({shape[1]}x{shape[0]}), decoded once")
        lines.append(
            f"calls        {run['warmup']} warm-up + {run['runs']} timed per row; "
            f"end-to-end and bare runtime {order}"
        )
        load = load_line(run)
        if load:
            lines.append(load)
    return lines


def load_line(run: Mapping[str, Any]) -> str | None:
    """The 1-minute load average before and after the runs, from a report's ``run`` record."""
    load = run.get("load_average_before")
    if not load:
        return None
    after = run.get("load_average_after") or ["?"]
    return f"load avg     {load[0]} before, {after[0]} after (1 min; other processes add noise)"


def _single(report: Mapping[str, Any], record: Mapping[str, Any]) -> list[str]:
    latency = record["latency_ms"]
    size = "x".join(str(v) for v in reversed(record["imgsz"]))
    described = f"{record['arch']} decoder, {size} {record['input_dtype']} input"
    lines = [
        f"{record['name']} on {record['backend']} ({described})",
        *_run_lines(report),
        "",
    ]
    rows = []
    for label, key in (
        ("end-to-end", "e2e"),
        ("  preprocess", "preprocess"),
        ("  infer", "infer"),
        ("  postprocess", "postprocess"),
        ("bare runtime", "bare"),
    ):
        stats = latency[key]
        if stats is None:
            rows.append([label, "n/a", "n/a", "n/a"])
        else:
            rows.append([label, _ms(stats["p50"]), _ms(stats["p95"]), _ms(stats["mean"])])
    lines += format_table(["", "p50 ms", "p95 ms", "mean ms"], rows)
    lines.append("")
    if record["overhead"] is None:
        overhead = f"n/a ({record['bare_reason']})"
    else:
        overhead = (
            f"{record['overhead']:.3f} (p50 end-to-end / p50 bare; "
            f"per-pair median {record['overhead_paired']:.3f})"
        )
    memory = "n/a" if record["peak_rss_mb"] is None else f"{record['peak_rss_mb']:.0f} MB ({RSS_NOTE})"
    lines += [
        f"throughput   {record['fps']:.2f} FPS (1000 / p50 end-to-end); {record['detections']} detections",
        f"pipelined    {_pipelined_text(record)}",
        f"overhead     {overhead}",
        f"model        {record['size_mb']:.2f} MB, loaded in {record['load_ms']:.0f} ms",
        f"peak RSS     {memory}",
    ]
    if record.get("accuracy"):
        accuracy = record["accuracy"]
        lines.append(f"accuracy     mAP50-95 {accuracy['map50_95']:.4f}, mAP50 {accuracy['map50']:.4f}")
    lines.append(f"power        {_power_text(record)}")
    lines.append(
        f"temperature  {_temperature_text(report.get('run', {}))}{_chip_temperatures(report['results'])}"
    )
    return lines


def _comparison(report: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> list[str]:
    with_accuracy = any(r.get("accuracy") for r in records)
    with_power = any(r["power"]["watts"] is not None for r in records)
    with_pipelined = any(r.get("pipelined") for r in records)
    headers = ["model", "backend", "MB", "p50 ms", "p95", "pre", "infer", "post", "bare", "overhead"]
    headers += ["FPS", "speed-up"]
    headers += ["pipelined FPS"] if with_pipelined else []
    headers += ["mAP50-95"] if with_accuracy else []
    headers += ["W", "FPS/W"] if with_power else []
    rows = []
    for record in records:
        latency = record["latency_ms"]
        bare = latency["bare"]
        row = [
            record["name"],
            record["backend"],
            f"{record['size_mb']:.1f}",
            _ms(latency["e2e"]["p50"]),
            _ms(latency["e2e"]["p95"]),
            *(_ms(latency[stage]["p50"]) for stage in STAGES),
            _ms(bare["p50"] if bare else None),
            _number(record["overhead"], ".3f"),
            f"{record['fps']:.1f}",
            _number(record["speedup"], ".2f") + ("x" if record["speedup"] is not None else ""),
        ]
        if with_pipelined:
            pipelined = record.get("pipelined")
            row.append(f"{pipelined['fps']:.1f} ({pipelined['in_flight']})" if pipelined else "n/a")
        if with_accuracy:
            accuracy = record.get("accuracy")
            row.append(_number(accuracy["map50_95"] if accuracy else None, ".4f"))
        if with_power:
            row += [_number(record["power"]["watts"], ".2f"), _number(record["power"]["fps_per_watt"], ".2f")]
        rows.append(row)
    lines = [*_run_lines(report), "", *format_table(headers, rows, left=2), ""]
    lines += [
        "ms per call, p50 unless marked p95; pre/infer/post: the pipeline's own stage timings;",
        "bare: the runtime alone on the same tensor; overhead: p50 / bare; speed-up: vs the first row",
    ]
    if with_pipelined:
        lines.append(
            "pipelined FPS: frames through Model.submit with (N) in flight; n/a: synchronous backend"
        )
    loads = ", ".join(f"{r['name']}/{r['backend']} {r['load_ms']:.0f} ms" for r in records)
    lines.append(f"load         {loads}")
    peak = records[-1]["peak_rss_mb"]
    lines.append(f"peak RSS     {'n/a' if peak is None else f'{peak:.0f} MB'} ({RSS_NOTE})")
    for record in records:
        if record["bare_reason"]:
            lines.append(f"bare n/a     {record['name']} on {record['backend']}: {record['bare_reason']}")
    if not with_power:
        lines.append(f"power        {_power_text(records[0])}")
    lines.append(f"temperature  {_temperature_text(report.get('run', {}))}{_chip_temperatures(records)}")
    return lines


def format_report(report: Mapping[str, Any]) -> str:
    """The plain-text report: details for one row, a comparison table for several."""
    records = report["results"]
    lines = _single(report, records[0]) if len(records) == 1 else _comparison(report, records)
    return "\n".join(lines)

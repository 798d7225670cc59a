"""``edgecv compress report``: what each compression buys, measured with edgecv's own bench and val.

One row per model file (the original first: the baseline), any format edgecv loads (ONNX, an
edgecv-torch checkpoint, an INT8 ``.pt2``, TFLite ...): file size, median end-to-end latency from
``edgecv.bench.benchmark`` (every model loaded in one process, calls alternated in blocks so a
noisy machine slows them alike) and the speed-up over the baseline, mAP50-95 from
``edgecv.evaluation.validate`` and its drop in points. Accuracy is scored on one half of the
dataset (``subset``, default ``odd``): the half not used to calibrate or distil (those use
``even``), since scores on the images a model was tuned on flatter it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from edgecv.backend import ConfigError, Progress

BLOCK = 10
"""Timed calls per model before the next model's turn (as ``edgecv bench``)."""


@attrs.frozen
class Entry:
    label: str
    path: Path


def parse_entry(text: str) -> Entry:
    """``LABEL=PATH``, or a bare ``PATH`` labelled by its file name (a path holding ``=`` that
    exists is taken whole)."""
    label, sep, rest = text.partition("=")
    if not sep or Path(text).exists():
        return Entry(Path(text).stem, Path(text))
    if not label.strip() or not rest:
        raise ConfigError(
            f"Cannot read the model {text!r}", "Pass LABEL=PATH, e.g. -m 'pruned 30%=pruned.onnx'."
        )
    return Entry(label.strip(), Path(rest))


def compress_report(
    entries: Sequence[Entry],
    data: Path,
    image: Path,
    *,
    subset: str = "odd",
    backend: str = "auto",
    options: Mapping[str, Any] | None = None,
    warmup: int = 5,
    runs: int = 50,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The report for ``entries`` (the first is the baseline) as a JSON-ready dict."""
    import edgecv
    from edgecv.backend import read_image
    from edgecv.bench import benchmark, describe_device, model_size_bytes
    from edgecv.calibration import check_subset
    from edgecv.evaluation import validate

    if not entries:
        raise ConfigError("No models to compare", "Pass --model LABEL=PATH, the original model first.")
    subset = check_subset(subset, "--subset")
    models = [edgecv.load(entry.path, backend, **dict(options or {})) for entry in entries]
    measurements = benchmark(
        models, read_image(image), warmup=warmup, runs=runs, interleave=True, block=BLOCK, progress=progress
    )
    scores = [validate(model, data, subset=subset, progress=progress) for model in models]
    base_p50, base_map = measurements[0].e2e.p50, scores[0].map50_95
    base_size = model_size_bytes(models[0].spec.path)
    rows = []
    for entry, model, measurement, score in zip(entries, models, measurements, scores, strict=True):
        size = model_size_bytes(model.spec.path)
        rows.append(
            {
                "technique": entry.label,
                "model": str(model.spec.path),
                "backend": model.spec.backend,
                "imgsz": list(model.spec.input.size),
                "size_bytes": size,
                "size_ratio": round(base_size / size, 3),
                "p50_ms": round(measurement.e2e.p50, 3),
                "p95_ms": round(measurement.e2e.p95, 3),
                "speedup": round(base_p50 / measurement.e2e.p50, 3),
                "map50_95": round(score.map50_95, 6),
                "map50": round(score.map50, 6),
                "drop_pt": round((base_map - score.map50_95) * 100, 2),
            }
        )
    return {
        "data": str(data),
        "subset": subset,
        "images": scores[0].images,
        "source": str(image),
        "warmup": warmup,
        "runs": runs,
        "device": describe_device(),
        "rows": rows,
    }


def format_markdown(report: Mapping[str, Any]) -> str:
    """The report as a Markdown table plus one line on how it was measured."""
    header = (
        "| Technique | Backend | Size (MB) | Smaller | p50 (ms) | Speed-up | mAP50-95 | Drop (pt) |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|"
    )
    lines = [header]
    for row in report["rows"]:
        lines.append(
            f"| {_cell(row['technique'])} | {row['backend']} | {row['size_bytes'] / 1e6:.1f} "
            f"| {row['size_ratio']:.2f}x | {row['p50_ms']:.1f} | {row['speedup']:.2f}x "
            f"| {row['map50_95']:.3f} | {row['drop_pt']:+.1f} |"
        )
    from edgecv.bench.device import device_line

    where = device_line(report["device"]) if report.get("device") else "this machine"
    lines.append("")
    lines.append(
        f"mAP50-95 on the {report['subset']} half of {Path(report['data']).name} "
        f"({report['images']} images); "
        f"p50 end to end over {report['runs']} alternated calls on {Path(report['source']).name}, {where}. "
        "Drop: points below the first row."
    )
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2)

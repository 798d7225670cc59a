"""``edgecv export``: convert an ONNX model to another backend's format through the plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgecv.calibration import SUBSETS
from edgecv.cli.options import VALUE_RULE, export_options, option_flag
from edgecv.progress import terminal_progress

# A quantized export that loses more than this (mAP50-95, in points) on --check DATA is flagged.
MAX_MAP_DROP = 1.0


@click.command("export")
@click.option("--model", "-m", required=True, help="Source ONNX model.")
@click.option(
    "--to", "target", required=True, help="Target format, e.g. ncnn, tflite, onnx, tensorrt, hailo."
)
@click.option(
    "--precision",
    default=None,
    help="fp32 (default), fp16 or int8 (full-integer); tflite also has dynamic (int8 weights, float "
    "activations); hailo is always int8.",
)
@click.option("--imgsz", type=int, default=None, help="Static input size of the exported model.")
@click.option(
    "--calib", type=click.Path(exists=True, file_okay=False), default=None, help="Calibration images."
)
@click.option("--calib-size", type=int, default=None, help="Number of calibration images.")
@click.option(
    "--calib-subset",
    type=click.Choice(SUBSETS, case_sensitive=False),
    default="all",
    show_default=True,
    help="Calibrate on every image of --calib or on the even/odd half in name order "
    "(score on the other half: edgecv val --subset).",
)
@click.option(
    "--calib-method",
    default=None,
    help="Calibration method of the target (onnx: minmax, entropy, percentile; tflite: average, minmax).",
)
@click.option(
    "--check",
    "check_data",
    default=None,
    help="Dataset to validate the source and the exported model on (as `edgecv val --data`).",
)
@click.option(
    "--io",
    "io_type",
    type=click.Choice(["int8", "uint8"]),
    default=None,
    help="Input type of a full-integer tflite model [default: int8].",
)
@click.option(
    "--workspace",
    type=float,
    default=None,
    help="GB of GPU memory TensorRT's tactics may use while building (tensorrt) [default: TensorRT's].",
)
@click.option(
    "--dynamic",
    is_flag=True,
    default=False,
    help="Keep a dynamic ONNX's image size dynamic (tensorrt: an optimization profile from 32 to --imgsz).",
)
@click.option(
    "--hw-arch",
    default=None,
    help="Hailo chip the HEF is compiled for (hailo): hailo8l (Raspberry Pi AI Kit; its HEFs also run "
    "on a Hailo-8) [default], hailo8 (AI HAT+ 26 TOPS, M.2 Hailo-8), hailo8r, hailo15h, hailo15m, "
    "hailo15l, hailo10h.",
)
@click.option("--output", "-o", required=True, help="Output file or folder.")
@option_flag(
    "--option",
    help="Exporter option KEY=VALUE, repeatable (no short form: -o is --output here): e.g. "
    f"optimize=false (onnx), edgetpu=false (tflite). {VALUE_RULE}",
)
def export_command(
    model: str,
    target: str,
    precision: str | None,
    imgsz: int | None,
    calib: str | None,
    calib_size: int | None,
    calib_subset: str,
    calib_method: str | None,
    check_data: str | None,
    io_type: str | None,
    workspace: float | None,
    dynamic: bool,
    hw_arch: str | None,
    output: str,
    option_pairs: tuple[str, ...],
) -> None:
    """Export MODEL to another format with the plugin that owns that format.

    Here -o is --output (as in every earlier release); exporter options such as onnx's
    optimize=false or tflite's edgetpu=false are given with --option KEY=VALUE, which has no
    short form on this command.
    """
    from edgecv import plugins, registry
    from edgecv.backends import select_exporter
    from edgecv.errors import BackendError
    from edgecv.files import check_writable

    exporter = select_exporter(plugins.exporters(), target)
    check_writable(Path(output), "-o")  # before a download or the (slow) export, not after them
    source = registry.resolve(model)
    validate = _validator() if check_data is not None else None  # fail before a long export
    options: dict[str, Any] = {
        "precision": precision,
        "imgsz": imgsz,
        "calib": calib,
        "calib_size": calib_size,
        "calib_subset": calib_subset,
        "calib_method": calib_method,
        "progress": terminal_progress(),  # stages on a terminal's stderr; nothing when piped
    }
    # Target-specific flags reach the exporter only when given: the others refuse keys they do not know.
    if io_type is not None:
        options["io"] = io_type
    if workspace is not None:
        options["workspace"] = workspace
    if dynamic:
        options["dynamic"] = True
    if hw_arch is not None:
        options["hw_arch"] = hw_arch
    options.update(export_options(option_pairs, options))
    result: Path | None = plugins.plugin_manager().hook.edgecv_export(
        exporter=exporter, source=source, output=Path(output), options=options
    )
    if result is None:
        raise BackendError(f"The {exporter.format} export wrote nothing", "Check the installed plugins.")
    click.echo(f"exported {source} -> {result}")
    if validate is not None and check_data is not None:
        _check(validate, source, Path(result), check_data, precision or "fp32", imgsz)


def _validator() -> Any:
    try:
        from edgecv.evaluation import validate
    except ImportError as exc:
        from edgecv.errors import ConfigError

        raise ConfigError(
            "--check needs edgecv.evaluation (edgecv val), which this edgecv-core does not have",
            "Upgrade edgecv-core, or export without --check and run `edgecv val` on both models.",
        ) from exc
    return validate


def _check(validate: Any, source: Path, result: Path, data: str, precision: str, imgsz: int | None) -> None:
    """Validate the source and the exported model on ``data``; warn when mAP50-95 drops too much."""
    from edgecv import load

    scores = {}
    for label, path in (("source", source), (precision, result)):
        score = scores[label] = validate(load(path, imgsz=imgsz), data, progress=terminal_progress())
        click.echo(f"check {label:>6}: mAP50-95 {score.map50_95:.3f}  mAP50 {score.map50:.3f}  ({path})")
    before, after = scores["source"], scores[precision]
    drop = (before.map50_95 - after.map50_95) * 100
    click.echo(f"check   drop: {drop:.2f} mAP50-95 points ({(before.map50 - after.map50) * 100:.2f} mAP50)")
    if drop > MAX_MAP_DROP:
        click.echo(
            f"warning: the {precision} export loses {drop:.2f} mAP50-95 points on {data} "
            f"(more than {MAX_MAP_DROP:.1f}); try more or more representative --calib images "
            "or another --calib-method",
            err=True,
        )

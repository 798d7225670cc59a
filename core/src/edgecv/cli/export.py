"""``edgecv export``: convert an ONNX model to another backend's format through the plugins."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.option("--model", "-m", required=True, help="Source ONNX model.")
@click.option("--to", "target", required=True, help="Target format, e.g. ncnn, tflite, onnx.")
@click.option("--precision", default="fp32", show_default=True, help="fp32, fp16 or int8.")
@click.option("--imgsz", type=int, default=None, help="Static input size of the exported model.")
@click.option(
    "--calib", type=click.Path(exists=True, file_okay=False), default=None, help="Calibration images."
)
@click.option("--calib-size", type=int, default=None, help="Number of calibration images.")
@click.option("--output", "-o", required=True, help="Output file or folder.")
def export_command(
    model: str,
    target: str,
    precision: str,
    imgsz: int | None,
    calib: str | None,
    calib_size: int | None,
    output: str,
) -> None:
    """Export MODEL to another format with the plugin that owns that format."""
    from edgecv import plugins, registry
    from edgecv.errors import BackendError

    source = registry.resolve(model)
    options = {"precision": precision, "imgsz": imgsz, "calib": calib, "calib_size": calib_size}
    result = plugins.plugin_manager().hook.edgecv_export(
        source=source, target=target, output=Path(output), options=options
    )
    if result is None:
        raise BackendError(
            f"No installed plugin exports to {target!r}",
            "Install the plugin for that format (see `edgecv backends`), e.g. pip install edgecv-" + target,
        )
    click.echo(f"exported {source} -> {result}")

"""The ``edgecv compress`` subcommands (the core's ``edgecv.cli.compress`` group lists ``COMMANDS``).

Only click is imported here; torch and the compression libraries load when a command runs, so
listing the commands stays fast.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgecv.calibration import SUBSETS

if TYPE_CHECKING:
    from edgecv_torch.yolov8 import YOLOv8

MODEL_HELP = "YOLOv8 model: an Ultralytics detect ONNX or an edgecv-torch checkpoint (.pt)."
IMGSZ_HELP = "Input size (square, a multiple of 32) [default: the model's]."


def _require(*modules: str) -> None:
    """ConfigError naming the install command when torch or a compression library is missing."""
    from edgecv.backend import ConfigError, pip_hint

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if not missing:
        return
    if "torch" in missing:
        from edgecv_torch.plugin import INSTALL_HINT

        raise ConfigError(
            "edgecv compress needs torch, which is not installed", f"Install it: {INSTALL_HINT}"
        )
    raise ConfigError(
        f"edgecv compress needs {', '.join(missing)}, which is not installed",
        f"Install edgecv-torch's compress extra: {pip_hint('edgecv-torch[compress]')}",
    )


def load_model(path: Path) -> YOLOv8:
    """The YOLOv8 in an Ultralytics ONNX file or an edgecv-torch checkpoint, in eval mode."""
    from edgecv.backend import ModelError

    if not path.is_file():
        raise ModelError(f"Model file not found: {path}", "Check the path.")
    from edgecv_torch.yolov8 import YOLOv8

    if path.suffix.lower() == ".onnx":
        return YOLOv8.from_onnx(path).eval()
    from edgecv_torch import checkpoint

    return checkpoint.load(path).eval()


def _imgsz(model: YOLOv8, imgsz: int | None) -> tuple[int, int]:
    from edgecv.backend import ConfigError

    if imgsz is None:
        return model.imgsz
    stride = max(model.strides)
    if imgsz < stride or imgsz % stride:
        raise ConfigError(
            f"--imgsz must be a positive multiple of the model's stride {stride}, got {imgsz}",
            "Pass e.g. --imgsz 320 or 640.",
        )
    return (imgsz, imgsz)


def _check_output(path: Path, suffix: str) -> None:
    from edgecv.backend import ConfigError
    from edgecv.files import check_output_file

    if path.suffix.lower() != suffix:
        raise ConfigError(f"--output {path} is not a {suffix} file name", f"Pass e.g. -o model{suffix}.")
    check_output_file(path, "--output", f"model{suffix}")


def _progress(enabled: bool = True) -> Any:
    from edgecv.backend import terminal_progress

    return terminal_progress(enabled=enabled)


@click.command("prune")
@click.option("--model", "-m", "model_path", required=True, type=Path, help=MODEL_HELP)
@click.option("--ratio", type=float, required=True, help="Share of channels removed, in [0, 1), e.g. 0.3.")
@click.option(
    "--layer-ratio",
    "layer_ratios",
    multiple=True,
    metavar="PREFIX=RATIO",
    help="A ratio for the layers under PREFIX (e.g. model.9=0.5); repeatable; overrides --ratio there.",
)
@click.option("--global", "global_pruning", is_flag=True, help="Rank channels across layers, not per layer.")
@click.option("--imgsz", type=int, default=None, help="Size of the input traced to find dependencies.")
@click.option("--output", "-o", required=True, type=Path, help="Pruned edgecv-torch checkpoint (.pt).")
def prune_command(
    model_path: Path,
    ratio: float,
    layer_ratios: tuple[str, ...],
    global_pruning: bool,
    imgsz: int | None,
    output: Path,
) -> None:
    """Remove a share of every layer's channels (L2 norm, torch-pruning's DepGraph).

    The channels are really removed (parameters and FLOPs drop), the detection head's output
    layout stays; export the result with `edgecv compress export` and recover accuracy with
    `edgecv compress distill`.
    """
    from edgecv.backend import ConfigError

    ratios: dict[str, float] = {"": ratio}
    for text in layer_ratios:
        prefix, sep, value = text.partition("=")
        try:
            ratios[prefix.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not prefix.strip():
            raise ConfigError(f"Cannot read --layer-ratio {text!r}", "Pass PREFIX=RATIO, e.g. model.9=0.5.")
    from edgecv_torch.prune import check_ratios

    check_ratios(ratios)  # before the model loads
    _check_output(output, ".pt")
    _require("torch", "torch_pruning")
    import torch

    from edgecv_torch import checkpoint
    from edgecv_torch.prune import prune

    model = load_model(model_path)
    size = _imgsz(model, imgsz)
    before = sum(p.numel() for p in model.parameters())
    pruned = prune(
        model,
        ratios if len(ratios) > 1 else ratio,
        example=torch.zeros(1, 3, *size),
        global_pruning=global_pruning,
    )
    checkpoint.save(pruned, output)
    after = sum(p.numel() for p in pruned.parameters())
    click.echo(f"Parameters {before:,} -> {after:,} ({after / before:.0%}); written to {output}")


@click.command("distill")
@click.option("--teacher", required=True, type=Path, help="The original model (ONNX or .pt).")
@click.option("--student", required=True, type=Path, help="The model to train, e.g. a pruned checkpoint.")
@click.option("--images", type=Path, multiple=True, help="Folder of unlabelled images (repeatable).")
@click.option("--video", type=Path, multiple=True, help="A video whose frames to learn from (repeatable).")
@click.option(
    "--subset",
    type=click.Choice(SUBSETS, case_sensitive=False),
    default="all",
    show_default=True,
    help="With --images: learn from every image or the even/odd half in name order "
    "(then score on the other half: edgecv compress report --subset).",
)
@click.option("--steps", type=int, default=300, show_default=True, help="Training steps.")
@click.option("--batch", type=int, default=4, show_default=True, help="Images per step.")
@click.option("--imgsz", type=int, default=320, show_default=True, help="Training size (a multiple of 32).")
@click.option("--lr", type=float, default=5e-4, show_default=True, help="Adam learning rate.")
@click.option(
    "--schedule",
    default="constant",
    show_default=True,
    help="Learning rate: constant, or cosine (decayed to zero at --steps).",
)
@click.option("--scale", type=float, default=0.0, show_default=True, help="Random zoom: 1 +/- this.")
@click.option(
    "--translate", type=float, default=0.0, show_default=True, help="Random shift: this share of the size."
)
@click.option("--device", default=None, help="cpu, cuda or cuda:N [default: the first GPU, else the CPU].")
@click.option("--save-every", type=int, default=25, show_default=True, help="Steps between checkpoints.")
@click.option("--resume", is_flag=True, help="Continue the run saved in --output.")
@click.option("--output", "-o", required=True, type=Path, help="Folder of the run (state.pt, student.pt).")
def distill_command(
    teacher: Path,
    student: Path,
    images: tuple[Path, ...],
    video: tuple[Path, ...],
    subset: str,
    steps: int,
    batch: int,
    imgsz: int,
    lr: float,
    schedule: str,
    scale: float,
    translate: float,
    device: str | None,
    save_every: int,
    resume: bool,
    output: Path,
) -> None:
    """Train the student to reproduce the teacher's head outputs on unlabelled images and video
    frames (no labels, no training pipeline); resumable. The result is OUTPUT/student.pt."""
    from edgecv.backend import ConfigError

    if not images and not video:
        raise ConfigError(
            "Pass --images DIR or --video FILE (or both)", "The student learns from their frames."
        )
    if not images and subset != "all":
        raise ConfigError("--subset splits an --images folder, not a --video", "Leave out --subset.")
    _require("torch")
    from edgecv_torch.distill import DistillConfig, distill

    config = DistillConfig(
        steps=steps,
        batch=batch,
        imgsz=imgsz,
        lr=lr,
        save_every=save_every,
        scale=scale,
        translate=translate,
        schedule=schedule,
    )
    config.check()  # before the models load
    sources = [*(path for folder in images for path in _image_files(folder, subset)), *video]
    distill(
        load_model(teacher),
        load_model(student),
        sources,
        output,
        config,
        resume=resume,
        progress=_progress(),
        device=device,
    )
    click.echo(f"Student written to {output / 'student.pt'}")


def _image_files(folder: Path, subset: str) -> list[Path]:
    from edgecv.backend import ConfigError, ImageError
    from edgecv.calibration import take_subset
    from edgecv.images import iter_image_files

    if subset == "all":
        return [folder]
    try:
        return take_subset(list(iter_image_files([folder])), subset)
    except ImageError as exc:
        raise ConfigError(f"No images to distil on: {exc.message}", exc.hint) from exc


@click.command("ptq")
@click.option("--model", "-m", "model_path", required=True, type=Path, help=MODEL_HELP)
@click.option("--calib", required=True, type=Path, help="Folder of calibration images.")
@click.option("--calib-size", type=int, default=32, show_default=True, help="Calibration images used.")
@click.option(
    "--calib-subset",
    type=click.Choice(SUBSETS, case_sensitive=False),
    default="even",
    show_default=True,
    help="Calibrate on the even/odd half of --calib in name order (score on the other), or all.",
)
@click.option("--imgsz", type=int, default=None, help=IMGSZ_HELP)
@click.option(
    "--quantizer",
    type=click.Choice(["auto", "x86", "xnnpack", "arm"]),
    default="auto",
    show_default=True,
    help="PT2E quantizer: x86 (Inductor), xnnpack (ExecuTorch, ARM) or arm (Inductor); auto: by machine.",
)
@click.option("--runs", type=int, default=20, show_default=True, help="Timed calls per model (0: no timing).")
@click.option(
    "--compile",
    "with_compile",
    is_flag=True,
    help="Also time both models through torch.compile (Inductor), which INT8 needs to be fast.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--output", "-o", required=True, type=Path, help="INT8 torch.export program (.pt2).")
def ptq_command(
    model_path: Path,
    calib: Path,
    calib_size: int,
    calib_subset: str,
    imgsz: int | None,
    quantizer: str,
    runs: int,
    with_compile: bool,
    as_json: bool,
    output: Path,
) -> None:
    """INT8 post-training quantization for torch deployments (torchao PT2E: torch.export,
    prepare_pt2e, calibrate on --calib through edgecv's preprocessing, convert_pt2e).

    Writes a .pt2 the torch backend runs, and reports its size and latency next to FP32 in the
    torch runtime (eager, and with --compile through Inductor).
    """
    from edgecv.backend import ConfigError, calibration_files

    if runs < 0:
        raise ConfigError(f"--runs must be 0 or more, got {runs}", "Pass e.g. --runs 20.")
    _check_output(output, ".pt2")
    calibration_files(calib, calib_size, calib_subset)  # an empty or missing folder fails before loading
    _require("torch", "torchao")
    from edgecv_torch import ptq

    model = load_model(model_path)
    size = _imgsz(model, imgsz)
    progress = _progress(not as_json)
    batches = ptq.calibration_batches(calib, size, calib_size, calib_subset)
    example = batches[0]()
    quantizer = ptq.resolve_quantizer(quantizer)
    quantized = ptq.quantize(model, example, batches, quantizer=quantizer, progress=progress)
    metadata = {
        **model.metadata,
        "imgsz": str(list(size)),
        "edgecv_precision": "int8",
        "edgecv_quantization": f"torchao PT2E ({quantizer} quantizer), static int8, "
        f"{len(batches)} {calib_subset} images of {calib.name}",
    }
    ptq.save_program(quantized, example, output, metadata)
    fp32_bytes = len(ptq.program_bytes(ptq.export_program(model, example), model.metadata))
    result: dict[str, Any] = {
        "model": str(model_path),
        "output": str(output),
        "imgsz": list(size),
        "calibration": {"folder": str(calib), "subset": calib_subset, "images": len(batches)},
        "quantizer": quantizer,
        "size_bytes": {"fp32": fp32_bytes, "int8": output.stat().st_size},
        "latency_ms": _latency(model, quantized, example, runs, with_compile, progress),
    }
    click.echo(json.dumps(result, indent=2) if as_json else _ptq_text(result))


def _latency(
    model: Any, quantized: Any, example: Any, runs: int, with_compile: bool, progress: Any
) -> dict[str, dict[str, float]]:
    """p50 of FP32 and INT8 in the torch runtime, alternated call by call, eager (and compiled)."""
    from edgecv_torch import ptq

    if runs == 0:
        return {}
    models = {"eager fp32": model, "eager int8": quantized}
    if with_compile:
        models |= {"inductor fp32": ptq.compiled(model), "inductor int8": ptq.compiled(quantized)}
    summaries = ptq.compare_speed(models, example, runs=runs, progress=progress)
    return {name: summary.to_dict() for name, summary in summaries.items()}


def _ptq_text(result: dict[str, Any]) -> str:
    sizes = result["size_bytes"]
    lines = [
        f"INT8 program written to {result['output']} "
        f"({result['calibration']['images']} calibration images, {result['calibration']['subset']} half)",
        f"size (.pt2): fp32 {sizes['fp32'] / 1e6:.1f} MB, int8 {sizes['int8'] / 1e6:.1f} MB "
        f"({sizes['fp32'] / sizes['int8']:.2f}x smaller)",
    ]
    latency = result["latency_ms"]
    for mode in ("eager", "inductor"):
        fp32, int8 = latency.get(f"{mode} fp32"), latency.get(f"{mode} int8")
        if fp32 and int8:
            lines.append(
                f"p50 {mode}: fp32 {fp32['p50']:.1f} ms, int8 {int8['p50']:.1f} ms "
                f"({fp32['p50'] / int8['p50']:.2f}x), {fp32['n']} alternated calls at {result['imgsz'][1]}"
            )
    return "\n".join(lines)


@click.command("export")
@click.option("--model", "-m", "model_path", required=True, type=Path, help=MODEL_HELP)
@click.option("--imgsz", type=int, default=None, help=IMGSZ_HELP)
@click.option("--output", "-o", required=True, type=Path, help="ONNX file to write.")
def export_command(model_path: Path, imgsz: int | None, output: Path) -> None:
    """Export a checkpoint (pruned, distilled) to ONNX (opset 17, static, simplified, edgecv
    metadata); every other backend's `edgecv export` takes it from there."""
    _check_output(output, ".onnx")
    _require("torch")
    from edgecv_torch.onnx_export import export_onnx

    model = load_model(model_path)
    export_onnx(model, output, imgsz=_imgsz(model, imgsz), source=model_path)
    click.echo(f"ONNX written to {output}")


@click.command("report")
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    required=True,
    metavar="LABEL=PATH",
    help="A model and its row label (e.g. 'pruned 30%=pruned.onnx'); repeat; the first is the baseline.",
)
@click.option("--data", "-d", required=True, type=Path, help="Labelled dataset (as `edgecv val --data`).")
@click.option(
    "--subset",
    type=click.Choice(SUBSETS, case_sensitive=False),
    default="odd",
    show_default=True,
    help="Score the half not used to calibrate or distil (they default to even).",
)
@click.option("--backend", "-b", default="auto", show_default=True, help="Backend for every model.")
@click.option(
    "--source", type=Path, default=None, help="Image to time on [default: <assets>/images/bus.jpg]."
)
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Untimed calls.")
@click.option(
    "--runs", type=click.IntRange(min=1), default=50, show_default=True, help="Timed calls per model."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of Markdown.")
@click.option("--output", "-o", type=Path, default=None, help="Also write what is printed to this file.")
def report_command(
    models: tuple[str, ...],
    data: Path,
    subset: str,
    backend: str,
    source: Path | None,
    warmup: int,
    runs: int,
    as_json: bool,
    output: Path | None,
) -> None:
    """Compare models: size, p50 and speed-up (edgecv bench), mAP50-95 and its drop on the
    held-out half (edgecv val), as a Markdown table or JSON."""
    from edgecv.backend import atomic_target
    from edgecv.files import check_output_file
    from edgecv.registry import sample_image
    from edgecv_torch.report import compress_report, format_markdown, parse_entry, to_json

    entries = [parse_entry(text) for text in models]
    if output is not None:
        check_output_file(output, "--output", "report.md")
    report = compress_report(
        entries,
        data,
        sample_image(source),
        subset=subset,
        backend=backend,
        warmup=warmup,
        runs=runs,
        progress=_progress(not as_json),
    )
    text = to_json(report) if as_json else format_markdown(report)
    if output is not None:
        with atomic_target(output) as partial:
            partial.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    click.echo(text.rstrip("\n"))


@click.command("from-ultralytics")
@click.option("--model", "-m", "model_path", required=True, type=Path, help="Ultralytics YOLOv8 detect .pt.")
@click.option("--output", "-o", required=True, type=Path, help="edgecv-torch checkpoint to write (.pt).")
def from_ultralytics_command(model_path: Path, output: Path) -> None:
    """Convert an Ultralytics YOLOv8 detect .pt into an edgecv-torch checkpoint (weights only,
    BatchNorm folded) that every other command reads. Needs the ultralytics package (AGPL-3.0).

    An Ultralytics .pt is a pickle: reading it runs code from the file, so convert only files you
    trust. The checkpoint written loads without running any code.
    """
    _check_output(output, ".pt")
    _require("torch")
    from edgecv_torch import checkpoint
    from edgecv_torch.ultralytics_pt import from_ultralytics

    model = from_ultralytics(model_path)
    checkpoint.save(model, output)
    click.echo(
        f"{model_path.name}: YOLOv8, {model.num_classes} classes, {model.imgsz[0]} px; written to {output}"
    )


COMMANDS: dict[str, click.Command] = {
    "prune": prune_command,
    "distill": distill_command,
    "ptq": ptq_command,
    "export": export_command,
    "report": report_command,
    "from-ultralytics": from_ultralytics_command,
}

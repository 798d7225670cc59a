"""Prune YOLOv8n, distil it back, and measure every stage with edgecv's own `bench` and `val`.

    python benchmarks/torch_compress.py --work /tmp/compress            # the full run (CPU: long)
    python benchmarks/torch_compress.py --work /tmp/c --steps 4 --imgsz 320 --train-imgsz 128
    python benchmarks/torch_compress.py --work /tmp/g --device cuda --train-imgsz 640 --batch 32 \
        --lr 1e-3 --schedule cosine --scale 0.5 --translate 0.1 --steps 3000 --no-bench  # on a GPU

1. the original model: ``YOLOv8.from_onnx(<assets>/models/yolov8n_fp32_dequant.onnx)``;
2. ``prune`` ``--ratio`` (0.3) of its channels (L2 norm, DepGraph), exported to ONNX;
3. ``distill`` the pruned model from the original, label-free, on the EVEN half of the dataset's
   images (name order), resumable in ``<work>/distill`` (run again with ``--resume``); with
   ``--rounds N``, prune a share and distil ``N`` times instead (``<work>/distill1``...), the
   ``pruned`` row staying the one-shot model;
4. ``edgecv bench`` of the three ONNX files in one run (alternated blocks, ORT CPU), and
   ``edgecv val --subset odd`` of each: scored only on images the distillation never saw
   (``--no-bench``: scores only, e.g. where the machine is busy with other runs).

Prints a table and writes ``<work>/results.json``. Needs edgecv-torch with its compress extra.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import torch

from edgecv.calibration import take_subset
from edgecv.images import iter_image_files
from edgecv.registry import assets_dir
from edgecv_torch.distill import STATE_FILE, DistillConfig, distill
from edgecv_torch.onnx_export import export_onnx
from edgecv_torch.prune import prune
from edgecv_torch.yolov8 import YOLOv8


def edgecv_json(*arguments: str | Path) -> dict[str, Any]:
    """Run the ``edgecv`` CLI (this interpreter's) and parse its ``--json`` output."""
    command = [sys.executable, "-m", "edgecv", *map(str, arguments), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"error: {' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    assets = assets_dir() or Path("shared/assets")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=assets / "models" / "yolov8n_fp32_dequant.onnx")
    parser.add_argument(
        "--data", type=Path, default=assets / "coco128", help="YOLO dataset (images/ + labels/)"
    )
    parser.add_argument("--work", type=Path, required=True, help="folder for the models and the run")
    parser.add_argument("--ratio", type=float, default=0.3, help="share of channels removed")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="prune and distil in this many rounds, each removing the same share of what is left",
    )
    parser.add_argument("--round-to", type=int, default=None, help="keep channel counts multiples of this")
    parser.add_argument("--global-pruning", action="store_true")
    parser.add_argument("--imgsz", type=int, default=640, help="input size of the exported ONNX files")
    parser.add_argument("--train-imgsz", type=int, default=320, help="distillation input size")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--schedule", default="constant", help="learning rate: constant or cosine")
    parser.add_argument("--scale", type=float, default=0.0, help="random zoom 1 +/- this")
    parser.add_argument("--translate", type=float, default=0.0, help="random shift, a share of the size")
    parser.add_argument("--device", default=None, help="distil on cpu, cuda or cuda:N (default: GPU if any)")
    parser.add_argument("--no-bench", action="store_true", help="skip edgecv bench (scores only)")
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--resume", action="store_true", help="continue the distillation in <work>/distill")
    parser.add_argument("--threads", type=int, default=None, help="torch and ORT threads (default: theirs)")
    parser.add_argument("--runs", type=int, default=100, help="bench: timed calls per model")
    return parser.parse_args(argv)


def prune_and_distill(
    teacher: YOLOv8, images: list[Path], config: DistillConfig, args: argparse.Namespace
) -> YOLOv8:
    """``--rounds`` rounds of pruning ``1 - (1 - ratio) ** (1 / rounds)`` of the channels left and
    distilling ``steps / rounds`` steps, each in ``<work>/distill[N]`` (resumable): a model pruned a
    little at a time stays close enough to its teacher to learn back what it lost."""
    from edgecv.progress import terminal_progress

    share = 1 - (1 - args.ratio) ** (1 / args.rounds)
    round_config = attrs.evolve(config, steps=math.ceil(config.steps / args.rounds))
    student = teacher
    for number in range(1, args.rounds + 1):
        student = prune(
            student,
            share,
            example=torch.zeros(1, 3, args.train_imgsz, args.train_imgsz),
            global_pruning=args.global_pruning,
            round_to=args.round_to,
        )
        folder = args.work / ("distill" if args.rounds == 1 else f"distill{number}")
        resume = args.resume and (folder / STATE_FILE).exists()
        student = distill(
            teacher,
            student,
            images,
            folder,
            round_config,
            resume=resume,
            progress=terminal_progress(),
            device=args.device,
        )
    return student


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_arguments(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = ["--threads", str(args.threads)] if args.threads else []
    args.work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    teacher = YOLOv8.from_onnx(args.model)
    pruned = prune(
        teacher,
        args.ratio,
        example=torch.zeros(1, 3, args.train_imgsz, args.train_imgsz),
        global_pruning=args.global_pruning,
        round_to=args.round_to,
    )
    timings["prune_s"] = time.perf_counter() - started
    files = {
        "original": args.work / "original.onnx",
        "pruned": args.work / "pruned.onnx",
        "distilled": args.work / "distilled.onnx",
    }
    export_onnx(teacher, files["original"], imgsz=args.imgsz, source=args.model)
    export_onnx(pruned, files["pruned"], imgsz=args.imgsz, source=args.model)

    images = take_subset(list(iter_image_files([args.data / "images" / "train2017"])), "even")
    config = DistillConfig(
        steps=args.steps,
        batch=args.batch,
        imgsz=args.train_imgsz,
        lr=args.lr,
        save_every=args.save_every,
        schedule=args.schedule,
        scale=args.scale,
        translate=args.translate,
    )
    tick = time.perf_counter()
    student = prune_and_distill(teacher, images, config, args)
    timings["distill_s"] = time.perf_counter() - tick
    export_onnx(student, files["distilled"], imgsz=args.imgsz, source=args.model)

    tick = time.perf_counter()
    models = [argument for file in files.values() for argument in ("-m", file)]
    bench = (
        None
        if args.no_bench
        else edgecv_json("bench", *models, "-b", "onnx", "--runs", str(args.runs), *threads)
    )
    timings["bench_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    scores = {
        name: edgecv_json("val", "-m", file, "-d", args.data, "--subset", "odd", *threads)
        for name, file in files.items()
    }
    timings["val_s"] = time.perf_counter() - tick
    timings["total_s"] = time.perf_counter() - started

    rows = []
    p50s = [r["latency_ms"]["e2e"]["p50"] for r in bench["results"]] if bench else [math.nan] * len(files)
    base_map = scores["original"]["map50_95"]
    for (name, file), p50 in zip(files.items(), p50s, strict=True):
        rows.append(
            {
                "model": name,
                "file": str(file),
                "size_mb": round(file.stat().st_size / 1e6, 2),
                "params": sum(t.numel() for t in (teacher if name == "original" else student).parameters()),
                "p50_ms": p50,
                "speedup": round(p50s[0] / p50, 3),
                "map50_95": scores[name]["map50_95"],
                "drop_pt": round(100 * (base_map - scores[name]["map50_95"]), 2),
                "val_images": scores[name]["images"],
            }
        )
    result = {
        "settings": {key: str(value) for key, value in vars(args).items()},
        "distilled_on": f"{args.data} even half ({len(images)} images)",
        "scored_on": f"{args.data} odd half",
        "rows": rows,
        "timings_s": {key: round(value, 1) for key, value in timings.items()},
        "load_average": bench["run"]["load_average_before"] if bench else None,
    }
    (args.work / "results.json").write_text(json.dumps(result, indent=2))
    print(f"distilled on the even half ({len(images)} images), scored on the odd half of {args.data}")
    print(
        f"{'model':10} {'MB':>6} {'params':>9} {'p50 ms':>8} {'speed-up':>8} {'mAP50-95':>9} {'drop pt':>8}"
    )
    for row in rows:
        print(
            f"{row['model']:10} {row['size_mb']:6.2f} {row['params']:9d} {row['p50_ms']:8.1f} "
            f"{row['speedup']:7.2f}x {row['map50_95']:9.4f} {row['drop_pt']:8.2f}"
        )
    print("timings (s): " + ", ".join(f"{key} {value:.1f}" for key, value in timings.items()))
    return result


if __name__ == "__main__":
    main()

"""edgecv's NCNN backend against Ultralytics' NCNN backend, on the same model folder, in one run.

Each contender runs in its own long-lived worker process (edgecv in its venv's python, Ultralytics in
its own venv's python, offline); this driver (stdlib + numpy) asks them in turn for blocks of calls
over pipes, so noise on the shared machine hits both alike, and reports per-call p50/p95 and the
edgecv/Ultralytics ratio in two regimes:

- ``quiet``: nothing else started by this script;
- ``busy``: ``--busy K`` busy-loop processes (default: one per core) run during the phase, the
  oversubscribed case where spin-waiting OpenMP threads fight for the cores.

What is timed, on both sides:

- ``infer``: the predictor's inference stage on one prepared 1x3x640x640 float32 tensor (bus.jpg
  letterboxed once): Ultralytics' ``predictor.inference(tensor)`` (its ``AutoBackend`` NCNN path:
  ``ncnn.Mat`` of the tensor, one extractor, outputs to numpy, the stage its ``speed['inference']``
  times), and edgecv's ``model.infer(tensor)`` (the stage ``edgecv bench`` reports as infer).
- ``e2e``: one decoded BGR frame (bus.jpg, decoded once) through the whole pipeline:
  ``model.predict(frame, verbose=False)`` and edgecv's ``model.predict(frame)``. Both letterbox to
  640x640 (Ultralytics' rectangular letterbox is off for a static NCNN export).

Each of the two runs in ``--replicas`` workers (default 2), started in ABBA order after a lead
edgecv worker (``--lead``, default 1) that no pool includes, and the headline rows pool them: the
worker started first measured a few per cent slower than identical ones started later (see
``replicas``).

Extra contenders (``--variant``) run edgecv or Ultralytics with other OpenMP variables or load
options, to measure candidate defaults in the same alternation (e.g. today's passive waiting:
``--variant passive=edgecv,OMP_WAIT_POLICY=PASSIVE``).

On a machine shared with other users, ``--realtime 10`` (root) runs the workers at SCHED_RR
priority from their start through the quiet regime, so that nobody else's processes take the cores:
the closest such a machine gets to a device whose cores are free. The busy regime always runs at
normal priority.

Usage::

    python benchmarks/ncnn_vs_ultralytics.py --model /tmp/yolov8n_ncnn_model \
        --ultralytics-python /work/ulvenv/bin/python

Results go to ``benchmarks/results/ncnn_vs_ultralytics.{json,md}`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODES = ("infer", "e2e")
# Variables that decide how an OpenMP runtime waits or how many threads it starts: a worker gets
# them only where its contender says so, so both start from the same environment.
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "OMP_DYNAMIC", "KMP_BLOCKTIME")


# ----------------------------------------------------------------------------------------------
# Workers: run inside the contender's own python; protocol = one JSON line per request and reply.


def _edgecv_worker(model_dir: str, image: str, options: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    import cv2

    import edgecv

    model = edgecv.load(model_dir, backend="ncnn", **options)
    frame = cv2.imread(image)
    tensor, _ = model.preprocess(frame)
    tensor = np.ascontiguousarray(tensor, dtype=np.float32)
    session = model.session
    import ncnn

    info = {
        "edgecv": edgecv.__version__,
        "ncnn": getattr(ncnn, "__version__", "?"),
        "threads": int(session.net.opt.num_threads),
        "input": list(tensor.shape),
    }
    return (lambda: model.infer(tensor)), (lambda: model.predict(frame)), info


def _ultralytics_worker(
    model_dir: str, image: str, options: dict[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    import cv2
    import ncnn
    import torch
    import ultralytics
    from ultralytics import YOLO

    stub = None
    try:
        import torchvision  # noqa: F401  # Ultralytics' warmup imports it, then its NMS uses it
    except Exception:
        # Without a working torchvision, a stub whose ops.nms is Ultralytics' own NMS (its fallback,
        # "matches torchvision exactly") stands in for the one its warmup and NMS import.
        import types

        from ultralytics.utils.nms import TorchNMS

        stub = sys.modules["torchvision"] = types.ModuleType("torchvision")
        stub.ops = types.SimpleNamespace(nms=TorchNMS.nms)  # type: ignore[attr-defined]
    model = YOLO(model_dir, task="detect")
    frame = cv2.imread(image)
    model.predict(frame, verbose=False, **options)  # sets up the predictor (and its warmup)
    predictor = model.predictor
    tensor = predictor.preprocess([frame])
    info = {
        "ultralytics": ultralytics.__version__,
        "ncnn": getattr(ncnn, "__version__", "?"),
        "torch": torch.__version__,
        "threads": int(predictor.model.backend.net.opt.num_threads)
        if hasattr(predictor.model, "backend")
        else None,
        "input": list(tensor.shape),
        "nms": "ultralytics' own (no working torchvision)" if stub is not None else "torchvision",
    }
    return (
        (lambda: predictor.inference(tensor)),
        (lambda: model.predict(frame, verbose=False, **options)),
        info,
    )


def worker_main(kind: str, model_dir: str, image: str, options_json: str, warmup: int) -> None:
    # Replies go to the original stdout; anything the runtimes print goes to stderr instead.
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    options = json.loads(options_json)
    make = _edgecv_worker if kind == "edgecv" else _ultralytics_worker
    infer, e2e, info = make(model_dir, image, options)
    info["env"] = {name: os.environ[name] for name in OPENMP_VARIABLES if name in os.environ}
    calls = {"infer": infer, "e2e": e2e}
    for _ in range(warmup):
        infer()
        e2e()
    replies.write(json.dumps({"ready": info}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        call = calls[request["mode"]]
        deadline = time.perf_counter() + request["seconds"]
        times = []
        for _ in range(request["calls"]):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1e3)
            if time.perf_counter() > deadline:
                break
        replies.write(json.dumps({"ms": times}) + "\n")


# ----------------------------------------------------------------------------------------------
# Driver.


@dataclass
class Contender:
    label: str
    kind: str  # "edgecv" or "ultralytics"
    group: str = ""  # the pooled row it counts in (its label when empty)
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    ms: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (regime, mode) -> calls
    blocks: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # block medians

    def __post_init__(self) -> None:
        self.group = self.group or self.label


def parse_variant(text: str) -> Contender:
    """``LABEL=KIND[,VAR=VALUE...][,opt.NAME=VALUE...]``, e.g. ``spin100k=edgecv,GOMP_SPINCOUNT=100000``."""
    label, _, rest = text.partition("=")
    kind, *items = rest.split(",")
    if not label or kind not in ("edgecv", "ultralytics"):
        raise SystemExit(f"error: bad --variant {text!r}: expected LABEL=edgecv|ultralytics[,VAR=VALUE...]")
    contender = Contender(label, kind)
    for item in items:
        name, _, value = item.partition("=")
        if name.startswith("opt."):
            parsed: Any = {"true": True, "false": False}.get(value.lower(), value)
            if isinstance(parsed, str) and parsed.isdigit():
                parsed = int(parsed)
            contender.options[name[4:]] = parsed
        else:
            contender.env[name] = value
    return contender


def start(contender: Contender, args: argparse.Namespace) -> None:
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_VARIABLES}
    env.update(contender.env)
    env.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0", YOLO_VERBOSE="False")
    python = args.edgecv_python if contender.kind == "edgecv" else args.ultralytics_python
    command = [python, str(Path(__file__).resolve()), "--worker", contender.kind, "--model", args.model]
    command += [
        "--image",
        args.image,
        "--options",
        json.dumps(contender.options),
        "--warmup",
        str(args.warmup),
    ]
    contender.process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    if args.realtime:
        # Loading and warming up belong to the quiet regime too (a device whose cores are free):
        # threads the worker starts inherit the policy.
        set_realtime([contender.process.pid], args.realtime)


def receive(contender: Contender) -> dict[str, Any]:
    assert contender.process is not None and contender.process.stdout is not None
    line = contender.process.stdout.readline()
    if not line:
        raise SystemExit(
            f"error: the {contender.label} worker ended early (exit {contender.process.wait()}); "
            "run it alone with --worker to see why"
        )
    reply: dict[str, Any] = json.loads(line)
    return reply


def ask(contender: Contender, mode: str, calls: int, seconds: float) -> list[float]:
    assert contender.process is not None and contender.process.stdin is not None
    contender.process.stdin.write(json.dumps({"mode": mode, "calls": calls, "seconds": seconds}) + "\n")
    contender.process.stdin.flush()
    times: list[float] = receive(contender)["ms"]
    return times


@contextmanager
def busy_loops(count: int) -> Iterator[None]:
    """``count`` processes that spin on a core each until the block ends."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5)  # let the scheduler spread them
        yield
    finally:
        for loop in loops:
            loop.kill()
        for loop in loops:
            loop.wait()


def set_realtime(pids: Sequence[int], priority: int) -> None:
    """Every thread of ``pids`` to SCHED_RR at ``priority``, or back to SCHED_OTHER for 0 (Linux, root).

    Real-time threads run before every normal process, so other tenants of a shared machine cannot
    take the cores: the closest a shared machine gets to a device whose cores are the model's own.
    """
    policy = os.SCHED_RR if priority else os.SCHED_OTHER
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with suppress(ProcessLookupError):  # a thread that ended meanwhile
                os.sched_setscheduler(int(tid), policy, os.sched_param(priority))


def run_regime(contenders: Sequence[Contender], regime: str, args: argparse.Namespace) -> None:
    for block in range(args.blocks):
        # Rotate who goes first so neither always follows the other.
        order = list(contenders[block % len(contenders) :]) + list(contenders[: block % len(contenders)])
        for mode in args.modes:
            for contender in order:
                times = ask(contender, mode, args.calls, args.block_seconds)
                contender.ms.setdefault((regime, mode), []).extend(times)
                contender.blocks.setdefault((regime, mode), []).append(float(np.median(times)))
        print(f"  {regime} block {block + 1}/{args.blocks} done", file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _row(
    times: Sequence[float], blocks: Sequence[float], base: Sequence[float], base_blocks: Sequence[float]
) -> dict[str, Any]:
    return {
        "calls": len(times),
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
        "mean_ms": round(float(np.mean(times)), 2),
        "ratio_p50": round(float(np.percentile(times, 50) / np.percentile(base, 50)), 3),
        "ratio_p95": round(float(np.percentile(times, 95) / np.percentile(base, 95)), 3),
        # Paired by block: the median of (this block's median / Ultralytics' same block).
        "ratio_blocks": round(float(np.median(np.array(blocks) / np.array(base_blocks))), 3),
    }


def _pooled(workers: Sequence[Contender], key: tuple[str, str]) -> tuple[list[float], list[float]]:
    """All calls of ``workers`` together, and per block the mean of their block medians."""
    times = [t for worker in workers for t in worker.ms[key]]
    blocks = np.mean([worker.blocks[key] for worker in workers], axis=0)
    return times, [float(b) for b in blocks]


def summary(contenders: Sequence[Contender], regimes: Sequence[str], modes: Sequence[str]) -> dict[str, Any]:
    """Per (regime, mode): a pooled row per group (``edgecv``, ``ultralytics``: all their workers),
    then a row per worker where a group has several; ratios against pooled Ultralytics."""
    groups: dict[str, list[Contender]] = {}
    for contender in contenders:
        groups.setdefault(contender.group, []).append(contender)
    table: dict[str, Any] = {}
    for regime in regimes:
        for mode in modes:
            key = (regime, mode)
            base, base_blocks = _pooled(groups["ultralytics"], key)
            rows = {}
            for group, workers in groups.items():
                rows[group] = _row(*_pooled(workers, key), base, base_blocks)
            for contender in contenders:
                if len(groups[contender.group]) > 1:
                    rows[contender.label] = _row(contender.ms[key], contender.blocks[key], base, base_blocks)
            table[f"{regime}/{mode}"] = rows
    return table


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# edgecv NCNN vs Ultralytics NCNN",
        "",
        f"- command: `{result['command']}`",
        f"- CPU: {result['cpu']} ({result['cores']} cores); load (1 min) before/after: "
        f"{result['load_before']} / {result['load_after']}",
        f"- model: {result['model']}; {result['blocks']} blocks x {result['calls']} calls per contender, "
        f"mode and regime, alternated; busy regime: {result['busy']} busy-loop processes",
        f"- quiet regime at SCHED_RR priority {result['realtime']} (other tenants cannot take the cores)"
        if result["realtime"]
        else "- quiet regime at normal priority",
        "- infer: the inference stage on one prepared 1x3x640x640 tensor; e2e: a decoded bus.jpg frame "
        "through the whole pipeline. Ratios are against Ultralytics (lower is faster); "
        "ratio_blocks pairs block medians.",
        f"- {result.get('lead', 0)} lead {result.get('lead_kind', 'edgecv')} worker(s) started first "
        "(row `lead`, in no pool: the first worker started measured a few per cent slower than "
        "identical ones started later), then "
        f"{result.get('replicas', 1)} worker(s) each of edgecv and Ultralytics in ABBA order (e1 u1 u2 "
        "e2); the rows `edgecv` and `ultralytics` pool them, ratios are against pooled Ultralytics; "
        "variants are one worker each, started last.",
        "",
    ]
    for label, info in result["workers"].items():
        lines.append(f"- `{label}`: {json.dumps(info, sort_keys=True)}")
    for key, rows in result["table"].items():
        lines += [
            "",
            f"## {key}",
            "",
            "| contender | calls | p50 ms | p95 ms | mean ms | p50 ratio | p95 ratio | block ratio |",
        ]
        lines.append("|---|---|---|---|---|---|---|---|")
        for label, row in rows.items():
            lines.append(
                f"| {label} | {row['calls']} | {row['p50_ms']} | {row['p95_ms']} | {row['mean_ms']} | "
                f"{row['ratio_p50']} | {row['ratio_p95']} | {row['ratio_blocks']} |"
            )
    return "\n".join(lines) + "\n"


def replicas(count: int, lead: int, lead_kind: str = "edgecv") -> list[Contender]:
    """``lead`` workers of ``lead_kind``, then ``count`` workers each of edgecv and Ultralytics in
    ABBA order (e1 u1 u2 e2 e3 u3 ...).

    On this machine the edgecv worker started first measured 2-6 % slower than identical edgecv
    workers started after it in the same alternation, in all seven runs (1.018-1.059x Ultralytics,
    its later clones 0.98-1.004x), with numpy's huge pages off too; an Ultralytics worker started
    first measured once 3 % slower than a later one and once 1 % faster. The cause was not found.
    The lead workers take that place and are reported on their own row (``lead``), outside both
    pools; ABBA gives both kinds the same mean start position, so a trend along the rest of the
    start order cancels in the pooled rows.
    """
    order = [Contender(f"lead#{index + 1}", lead_kind, "lead") for index in range(lead)]
    for index in range(count):
        pair = [Contender(f"{kind}#{index + 1}", kind, kind) for kind in ("edgecv", "ultralytics")]
        order += pair if index % 2 == 0 else pair[::-1]
    if count == 1:
        for contender in order[lead:]:
            contender.label = contender.kind
    return order


def driver(args: argparse.Namespace) -> None:
    contenders = replicas(args.replicas, args.lead, args.lead_kind)
    contenders += [parse_variant(text) for text in args.variant]
    regimes = [r for r in args.regimes.split(",") if r]
    load_before = round(os.getloadavg()[0], 2)
    for contender in contenders:
        # One at a time: workers loading side by side would share the cores (and the adaptive
        # worker would rightly see contention) before the quiet regime starts.
        start(contender, args)
        contender.info = receive(contender)["ready"]
        print(f"{contender.label}: {contender.info}", file=sys.stderr, flush=True)
    try:
        pids = [os.getpid()] + [c.process.pid for c in contenders if c.process is not None]
        for regime in regimes:
            if regime == "busy":
                if args.realtime:
                    set_realtime(pids, 0)
                with busy_loops(args.busy):
                    run_regime(contenders, regime, args)
            elif args.realtime:
                set_realtime(pids, args.realtime)
                try:
                    run_regime(contenders, regime, args)
                finally:
                    set_realtime(pids, 0)
            else:
                run_regime(contenders, regime, args)
    finally:
        for contender in contenders:
            if contender.process is not None:
                contender.process.kill()
                contender.process.wait()
    result = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": round(os.getloadavg()[0], 2),
        "model": Path(args.model).name,
        "blocks": args.blocks,
        "calls": args.calls,
        "busy": args.busy,
        "replicas": args.replicas,
        "lead": args.lead,
        "lead_kind": args.lead_kind,
        "realtime": args.realtime,
        "workers": {c.label: {**c.info, "variant_env": c.env, "options": c.options} for c in contenders},
        "table": summary(contenders, regimes, args.modes),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / args.name
    for suffix, text in ((".json", json.dumps(result, indent=1) + "\n"), (".md", markdown(result))):
        temporary = stem.with_name(f".{stem.name}{suffix}.tmp")
        temporary.write_text(text)
        temporary.replace(stem.with_suffix(suffix))
    print(markdown(result))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an NCNN model folder (edgecv export --to ncnn)")
    parser.add_argument(
        "--image", default=str(Path(os.environ.get("EDGECV_ASSETS", ROOT / "assets")) / "images" / "bus.jpg")
    )
    parser.add_argument("--edgecv-python", default=str(ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--ultralytics-python", default="/work/ulvenv/bin/python")
    parser.add_argument("--blocks", type=int, default=6, help="alternated blocks per regime")
    parser.add_argument("--calls", type=int, default=10, help="calls per block, contender and mode")
    parser.add_argument("--lead", type=int, default=1, help="workers started first and left out of the pools")
    parser.add_argument("--lead-kind", choices=("edgecv", "ultralytics"), default="edgecv")
    parser.add_argument(
        "--replicas", type=int, default=2, help="workers each of edgecv and Ultralytics (ABBA start order)"
    )
    parser.add_argument("--block-seconds", type=float, default=4.0, help="a block stops early after this")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--regimes", default="quiet,busy")
    parser.add_argument("--modes", default=",".join(MODES), help="infer,e2e or one of them")
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy-loop processes in 'busy'")
    parser.add_argument(
        "--realtime",
        type=int,
        default=0,
        help="run the quiet regime at this SCHED_RR priority (1-99; root) on a machine shared with others",
    )
    parser.add_argument(
        "--variant", action="append", default=[], help="LABEL=KIND[,VAR=VALUE][,opt.NAME=VALUE]"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", default="ncnn_vs_ultralytics", help="result file stem")
    # Worker mode (started by the driver).
    parser.add_argument("--worker", choices=("edgecv", "ultralytics"), help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.replicas < 1 or args.lead < 0:
        parser.error("--replicas takes 1 or more, --lead 0 or more")
    args.modes = [m for m in args.modes.split(",") if m]
    if not set(args.modes) <= set(MODES):
        parser.error(f"--modes takes {','.join(MODES)}")
    if args.worker:
        worker_main(args.worker, args.model, args.image, args.options, args.warmup)
    else:
        driver(args)


if __name__ == "__main__":
    main()

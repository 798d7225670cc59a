"""Label-free distillation of a YOLOv8 detector: a pruned student learns to reproduce its teacher.

No labels and no training pipeline: the teacher (the original model) looks at unlabelled images
(a folder, or frames of a video) and the student is trained to give the same raw head outputs
(``YOLOv8.head_outputs``: per stride, 64 box-distribution logits and one logit per class, per
cell), which recovers what pruning damaged.

The loss, per stride, summed over strides:

* **classes**: binary cross-entropy of the student's logits against the teacher's sigmoid
  probabilities, summed and divided by the sum of those probabilities (YOLOv8's own class loss,
  with soft targets). BCE rather than MSE on logits: nearly every cell and class is background
  with a strongly negative logit whose exact value changes no detection; MSE would spend the
  student's capacity matching those, BCE weighs an error by what it changes in the score.
* **boxes**: KL divergence of each box side's 16-bin distribution, teacher to student, at
  temperature ``T`` (times ``T**2``, as in Hinton's KD), averaged over cells weighted by the
  teacher's highest class score there: the box of a background cell is never used.

Each step's images can be zoomed and shifted at random (``scale``, ``translate``: the same
affine warp for teacher and student, padded with the letterbox grey), so a few dozen images show
objects at many sizes and places. Images are letterboxed once and kept in memory as uint8
(bounded); each batch is converted and warped on the training device, so a GPU is not left
waiting on JPEG decoding. ``device="cuda"`` trains there (default: the first GPU when torch sees
one, else the CPU).

Training is resumable: ``output`` (a folder) gets ``state.pt`` (student weights, optimizer,
step, config; written atomically every ``save_every`` steps and at the end) and, at the end,
``student.pt`` (an edgecv-torch checkpoint). ``resume=True`` continues from ``state.pt``; with
the same settings the result equals an uninterrupted run's, because each step's batch, flips
and warps come from ``(seed, step)`` alone: bit for bit on the CPU, within rounding on a GPU
(whose convolution kernels are not bit-repeatable).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from edgecv.backend import ConfigError, ImageError, ModelError, Progress, atomic_target, one_line
from edgecv.progress import report
from edgecv_torch import checkpoint
from edgecv_torch.yolov8 import REG_MAX, YOLOv8

STATE_FILE = "state.pt"
STUDENT_FILE = "student.pt"
STATE_FORMAT = "edgecv-torch-distill-state"
MAX_FRAMES = 1000
"""Most frames taken from one video, evenly spread (letterboxed uint8: 300 KB each at 320)."""
CACHE_BYTES = 1 << 30
"""Letterboxed image files kept in memory up to this size; beyond it they are read each time."""
SCHEDULES = ("constant", "cosine")


@attrs.frozen
class DistillConfig:
    """What a run is made of; a resumed run must match the saved one (``steps`` may grow)."""

    steps: int = 300
    batch: int = 4
    imgsz: int = 320
    """Training input size (square, a multiple of 32; smaller than the model's is fine: the
    network is convolutional)."""
    lr: float = 5e-4
    T: float = 2.0
    box_weight: float = 1.0
    flip: bool = True
    """Mirror half of the images left-right (teacher and student alike)."""
    seed: int = 0
    save_every: int = 25
    scale: float = 0.0
    """Random zoom: each image is scaled by a factor drawn from [1 - scale, 1 + scale]."""
    translate: float = 0.0
    """Random shift of each image, up to this fraction of the size in x and in y."""
    schedule: str = "constant"
    """``constant`` learning rate, or ``cosine``: decayed to zero at ``steps``."""

    def check(self) -> None:
        for name in ("steps", "batch", "imgsz", "save_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"Distillation {name} must be a positive integer, got {value!r}")
        if self.imgsz % 32:
            raise ConfigError(
                f"Distillation imgsz must be a multiple of 32, got {self.imgsz}", "Pass e.g. 320."
            )
        for name in ("lr", "T"):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(f"Distillation {name} must be > 0 and finite, got {getattr(self, name)!r}")
        if not 0 <= self.box_weight < math.inf:
            raise ConfigError(f"Distillation box_weight must be >= 0, got {self.box_weight!r}")
        for name, top in (("scale", 1.0), ("translate", 0.5)):
            value = getattr(self, name)
            if not 0 <= value < top:
                raise ConfigError(
                    f"Distillation {name} must be in [0, {top:g}), got {value!r}", "Pass e.g. 0.5 or 0.1."
                )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"Distillation schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based)."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, self.steps) / self.steps))
        return self.lr

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Settings that differ from ``saved`` (a resumed run's), ``steps`` and ``save_every`` aside."""
        own = attrs.asdict(self)
        before = {**attrs.asdict(DistillConfig()), **saved}  # runs saved before a setting existed
        return [
            f"{key} {before.get(key)!r} -> {value!r}"
            for key, value in own.items()
            if key not in ("steps", "save_every") and before.get(key) != value
        ]


def distill_loss(
    student: Sequence[Tensor],
    teacher: Sequence[Tensor],
    T: float = 2.0,
    box_weight: float = 1.0,
) -> Tensor:
    """The loss above, between two models' ``head_outputs`` (same shapes)."""
    total = student[0].new_zeros(())
    for s_map, t_map in zip(student, teacher, strict=True):
        batch, channels = s_map.shape[:2]
        s_flat = s_map.reshape(batch, channels, -1)
        t_flat = t_map.detach().reshape(batch, channels, -1)
        sizes = [4 * REG_MAX, channels - 4 * REG_MAX]
        box_s, cls_s = torch.split(s_flat, sizes, 1)
        box_t, cls_t = torch.split(t_flat, sizes, 1)
        scores = cls_t.sigmoid()
        bce = F.binary_cross_entropy_with_logits(cls_s, scores, reduction="sum")
        total = total + bce / scores.sum().clamp(min=1.0)
        # [N, 4, 16, cells]: each box side's distribution over its bins.
        log_s = F.log_softmax(box_s.reshape(batch, 4, REG_MAX, -1) / T, 2)
        log_t = F.log_softmax(box_t.reshape(batch, 4, REG_MAX, -1) / T, 2)
        kl = (log_t.exp() * (log_t - log_s)).sum(2).mean(1)  # [N, cells]
        weight = scores.amax(1)  # [N, cells]
        total = total + box_weight * T * T * (kl * weight).sum() / weight.sum().clamp(min=1e-6)
    return total


def distill(
    teacher: YOLOv8,
    student: YOLOv8,
    images: Path | Sequence[Path],
    output: Path,
    config: DistillConfig | None = None,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    device: str | None = None,
) -> YOLOv8:
    """Train ``student`` to match ``teacher`` on ``images`` and return it on the CPU (also saved
    as ``output/student.pt``).

    ``images``: a folder of images, a video file, or a list of image files, folders and videos
    (to hold images out for scoring, pass one half: ``take_subset(files, "even")``, then
    ``edgecv val --subset odd``). ``device``: ``cpu``, ``cuda`` or ``cuda:N`` (default: the
    first GPU when torch sees one, else the CPU); neither model passed in is moved.
    ``output``: the run's folder. ``resume``: continue the run saved there (its student weights
    replace ``student``'s); without it a folder that already holds a run is refused, not
    overwritten.
    """
    config = config or DistillConfig()
    config.check()
    state_path = output / STATE_FILE
    if output.exists() and not output.is_dir():
        raise ConfigError(
            f"Distillation output {output} is a file", "Pass a folder for the run's checkpoints."
        )
    if state_path.exists() and not resume:
        raise ConfigError(
            f"{output} already holds a distillation run ({STATE_FILE})",
            "Pass resume=True (--resume) to continue it, or a new folder.",
        )
    from edgecv_torch.session import choose_device

    where = choose_device(device)
    if resume and not state_path.exists():
        raise ConfigError(f"No distillation run to resume in {output} (no {STATE_FILE})", "Leave out resume.")
    source = _Images(images, config.imgsz)
    start, student, optimizer = (
        _restore(state_path, config, where) if resume else (0, *_trainable(student, config, where))
    )
    teacher = _fresh_copy(teacher).to(where).requires_grad_(False).eval()
    output.mkdir(parents=True, exist_ok=True)
    student.train()
    with report(progress)("distilling", max(config.steps - start, 0)) as advance:
        for step in range(start, config.steps):
            batch = source.batch(config, step, where)
            with torch.no_grad():
                targets = teacher.head_outputs(batch)
            loss = distill_loss(student.head_outputs(batch), targets, config.T, config.box_weight)
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            for group in optimizer.param_groups:
                group["lr"] = config.lr_at(step)
            optimizer.step()
            done = step + 1
            if done % config.save_every == 0 or done == config.steps:
                _save_state(state_path, student, optimizer, done, config)
            advance(1)
    student = student.cpu().eval()
    checkpoint.save(student, output / STUDENT_FILE, {"edgecv_distilled": f"{config.steps} steps"})
    return student


class _Images:
    """Training images letterboxed to the training size as uint8 BGR canvases: image files
    (kept in memory up to ``CACHE_BYTES``, else read each time) and video frames (in memory)."""

    def __init__(self, images: Path | Sequence[Path], imgsz: int) -> None:
        from edgecv.spec import InputSpec

        self.size = (imgsz, imgsz)
        self.spec = InputSpec("images", (1, 3, imgsz, imgsz), "NCHW", "float32", self.size)
        sources = [Path(images)] if isinstance(images, (str, os.PathLike)) else [Path(p) for p in images]
        videos = [path for path in sources if path.is_file() and not _is_image(path)]
        self.frames: list[npt.NDArray[np.uint8]] = [
            frame for video in videos for frame in _video_frames(video, self.size)
        ]
        others = [path for path in sources if path not in videos]
        self.files: list[Path] = _image_files(others) if others or not videos else []
        self._cached: dict[int, npt.NDArray[np.uint8]] = {}
        self._room = CACHE_BYTES // (imgsz * imgsz * 3)

    def __len__(self) -> int:
        return len(self.files) + len(self.frames)

    def canvas(self, index: int) -> npt.NDArray[np.uint8]:
        """Image ``index`` (files first, then frames) letterboxed, uint8 BGR ``[S, S, 3]``."""
        if index >= len(self.files):
            return self.frames[index - len(self.files)]
        cached = self._cached.get(index)
        if cached is not None:
            return cached
        from edgecv.backend import read_image
        from edgecv.preprocess import letterbox

        canvas = letterbox(read_image(self.files[index]), self.size)[0]
        if len(self._cached) < self._room:
            self._cached[index] = canvas
        return canvas

    def batch(self, config: DistillConfig, step: int, device: torch.device | None = None) -> Tensor:
        """Step ``step``'s batch on ``device``: drawn from ``(seed, step)`` alone, so a resumed run
        sees the same; RGB, 0..1, exactly as ``edgecv.preprocess`` makes it, then flipped/warped."""
        device = device or torch.device("cpu")
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        picks = torch.randint(len(self), (config.batch,), generator=generator).tolist()
        flips = torch.rand(config.batch, generator=generator) < 0.5
        warps = torch.rand(config.batch, 3, generator=generator) * 2 - 1  # zoom, dx, dy in [-1, 1)
        pixels = torch.from_numpy(np.stack([self.canvas(index) for index in picks])).to(device)
        # BGR -> RGB, NCHW, times the float32 scale: the very values edgecv.preprocess gives.
        scale = torch.tensor(np.float32(self.spec.scale), device=device)
        batch = pixels.flip(3).permute(0, 3, 1, 2).to(torch.float32) * scale
        if config.flip:
            mirrored = flips.to(device).view(-1, 1, 1, 1)
            batch = torch.where(mirrored, batch.flip(3), batch)
        if config.scale or config.translate:
            batch = _warp(batch, 1 + config.scale * warps[:, 0], config.translate * warps[:, 1:])
        return batch.contiguous()


def _warp(batch: Tensor, zoom: Tensor, shift: Tensor) -> Tensor:
    """Each image zoomed by ``zoom`` [N] about its centre and moved by ``shift`` [N, 2] (fractions
    of its width and height); uncovered pixels get the letterbox grey (114)."""
    theta = torch.zeros(len(zoom), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    theta[:, :, 2] = -2 * shift / zoom.view(-1, 1)
    grid = F.affine_grid(theta.to(batch.device), list(batch.shape), align_corners=False)
    grey = 114 / 255
    warped = F.grid_sample(batch - grey, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped + grey


def _is_image(path: Path) -> bool:
    from edgecv.images import IMAGE_SUFFIXES

    return path.suffix.lower() in IMAGE_SUFFIXES


def _image_files(images: Path | Sequence[Path]) -> list[Path]:
    from edgecv.images import iter_image_files

    sources = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    try:
        files = list(iter_image_files(sources))
    except ImageError as exc:
        raise ConfigError(f"No images to distil on: {exc.message}", exc.hint) from exc
    missing = [file for file in files if not file.is_file()]
    if not files or missing:
        what = f"{missing[0]} does not exist" if missing else "the list of images is empty"
        raise ConfigError(f"No images to distil on: {what}", "Pass a folder of images or a video file.")
    return files


def _video_frames(path: Path, size: tuple[int, int]) -> list[npt.NDArray[np.uint8]]:
    """Up to ``MAX_FRAMES`` frames, evenly spread over the video, letterboxed to ``size``."""
    import cv2

    from edgecv.preprocess import letterbox
    from edgecv.runtime.sources import open_capture

    capture = open_capture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        every = max(1, -(-count // MAX_FRAMES))
        frames: list[npt.NDArray[np.uint8]] = []
        index = 0
        while len(frames) < MAX_FRAMES:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            if index % every == 0:
                frames.append(letterbox(frame, size)[0])
            index += 1
    finally:
        capture.release()
    if not frames:
        raise ConfigError(
            f"Cannot read frames from {path.name}", "Pass a readable video or a folder of images."
        )
    return frames


def _fresh_copy(model: YOLOv8) -> YOLOv8:
    """A copy rebuilt from ``model``'s weights on the CPU (the caller's model stays as it was)."""
    state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    return YOLOv8.from_state_dict(state, model.metadata, source="the model")


def _trainable(
    model: YOLOv8, config: DistillConfig, device: torch.device
) -> tuple[YOLOv8, torch.optim.Optimizer]:
    student = _fresh_copy(model).to(device).requires_grad_(True)
    return student, torch.optim.Adam(student.parameters(), lr=config.lr)


def _save_state(
    path: Path, student: YOLOv8, optimizer: torch.optim.Optimizer, step: int, config: DistillConfig
) -> None:
    record = {
        "format": STATE_FORMAT,
        "step": step,
        "config": attrs.asdict(config),
        "student": {name: tensor.detach().cpu().clone() for name, tensor in student.state_dict().items()},
        "metadata": dict(student.metadata),
        "optimizer": optimizer.state_dict(),
    }
    with atomic_target(path) as partial:
        torch.save(record, partial)


def _restore(
    path: Path, config: DistillConfig, device: torch.device
) -> tuple[int, YOLOv8, torch.optim.Optimizer]:
    """The saved step, student and optimizer on ``device`` (``weights_only``: no code in the file
    runs; a run saved on a GPU resumes on the CPU and back)."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(record, dict) or record.get("format") != STATE_FORMAT:
            raise ValueError("not an edgecv-torch distillation state")
        differences = config.differences(record["config"])
        if differences:
            raise ConfigError(
                f"Cannot resume {path.parent}: settings differ from the saved run ({'; '.join(differences)})",
                "Resume with the run's settings, or start a new folder.",
            )
        student = YOLOv8.from_state_dict(record["student"], record["metadata"], source=path.name)
        student, optimizer = _trainable(student, config, device)
        optimizer.load_state_dict(record["optimizer"])  # moves its state to the parameters' device
        step = int(record["step"])
    except (ConfigError, ModelError):
        raise
    except Exception as exc:  # torch.load and load_state_dict raise many types for damaged files
        raise ModelError(
            f"Cannot resume from {path}: {type(exc).__name__}: {one_line(exc)}",
            "Start a new run in another folder.",
        ) from exc
    return step, student, optimizer

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

Training is resumable: ``output`` (a folder) gets ``state.pt`` (student weights, optimizer,
step, config; written atomically every ``save_every`` steps and at the end) and, at the end,
``student.pt`` (an edgecv-torch checkpoint). ``resume=True`` continues from ``state.pt``; with
the same settings the result equals an uninterrupted run's, because each step's batch and flips
come from ``(seed, step)`` alone.
"""

from __future__ import annotations

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
"""Most video frames held in memory (letterboxed uint8: 300 KB each at 320)."""


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
            if not getattr(self, name) > 0:
                raise ConfigError(f"Distillation {name} must be > 0, got {getattr(self, name)!r}")
        if not self.box_weight >= 0:
            raise ConfigError(f"Distillation box_weight must be >= 0, got {self.box_weight!r}")

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Settings that differ from ``saved`` (a resumed run's), ``steps`` and ``save_every`` aside."""
        own = attrs.asdict(self)
        return [
            f"{key} {saved.get(key)!r} -> {value!r}"
            for key, value in own.items()
            if key not in ("steps", "save_every") and saved.get(key) != value
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
) -> YOLOv8:
    """Train ``student`` to match ``teacher`` on ``images`` and return it (also saved as
    ``output/student.pt``).

    ``images``: a folder of images, a video file, or a list of image files (to hold images out
    for scoring, pass one half: ``take_subset(files, "even")``, then ``edgecv val --subset odd``).
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
    source = _Images(images, config.imgsz)
    student = _fresh_copy(student)
    optimizer: torch.optim.Optimizer = torch.optim.Adam(student.parameters(), lr=config.lr)
    start = 0
    if resume and state_path.exists():
        start, student, optimizer = _restore(state_path, config)
    elif resume:
        raise ConfigError(f"No distillation run to resume in {output} (no {STATE_FILE})", "Leave out resume.")
    output.mkdir(parents=True, exist_ok=True)
    student.train()
    with report(progress)("distilling", max(config.steps - start, 0)) as advance:
        for step in range(start, config.steps):
            batch = source.batch(config, step)
            with torch.no_grad():
                targets = teacher.head_outputs(batch)
            loss = distill_loss(student.head_outputs(batch), targets, config.T, config.box_weight)
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimizer.step()
            done = step + 1
            if done % config.save_every == 0 or done == config.steps:
                _save_state(state_path, student, optimizer, done, config)
            advance(1)
    student.eval()
    checkpoint.save(student, output / STUDENT_FILE, {"edgecv_distilled": f"{config.steps} steps"})
    return student


class _Images:
    """Training images: files read on demand, or a video's frames kept letterboxed in memory."""

    def __init__(self, images: Path | Sequence[Path], imgsz: int) -> None:
        from edgecv.spec import InputSpec

        size = (imgsz, imgsz)
        self.spec = InputSpec("images", (1, 3, imgsz, imgsz), "NCHW", "float32", size)
        self.files: list[Path] = []
        self.frames: list[npt.NDArray[np.uint8]] = []
        if isinstance(images, (str, os.PathLike)) and Path(images).is_file() and not _is_image(Path(images)):
            self.frames = _video_frames(Path(images), size)
        else:
            self.files = _image_files(images)

    def __len__(self) -> int:
        return len(self.files) or len(self.frames)

    def batch(self, config: DistillConfig, step: int) -> Tensor:
        """Step ``step``'s batch: drawn from ``(seed, step)`` alone, so a resumed run sees the same."""
        from edgecv.backend import read_image
        from edgecv.preprocess import preprocess

        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        picks = torch.randint(len(self), (config.batch,), generator=generator).tolist()
        flips = (torch.rand(config.batch, generator=generator) < 0.5).tolist()
        tensors = []
        for index, flip in zip(picks, flips, strict=True):
            image = read_image(self.files[index]) if self.files else self.frames[index]
            tensor = torch.from_numpy(preprocess(image, self.spec)[0])
            tensors.append(tensor.flip(3) if flip and config.flip else tensor)
        return torch.cat(tensors)


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
    """A trainable copy rebuilt from ``model``'s weights (the caller's model stays as it was)."""
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    return YOLOv8.from_state_dict(state, model.metadata, source="the student").requires_grad_(True)


def _save_state(
    path: Path, student: YOLOv8, optimizer: torch.optim.Optimizer, step: int, config: DistillConfig
) -> None:
    record = {
        "format": STATE_FORMAT,
        "step": step,
        "config": attrs.asdict(config),
        "student": {name: tensor.detach().clone() for name, tensor in student.state_dict().items()},
        "metadata": dict(student.metadata),
        "optimizer": optimizer.state_dict(),
    }
    with atomic_target(path) as partial:
        torch.save(record, partial)


def _restore(path: Path, config: DistillConfig) -> tuple[int, YOLOv8, torch.optim.Optimizer]:
    """The saved step, student and optimizer (``weights_only``: no code in the file runs)."""
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
        student.requires_grad_(True)
        optimizer = torch.optim.Adam(student.parameters(), lr=config.lr)
        optimizer.load_state_dict(record["optimizer"])
        step = int(record["step"])
    except (ConfigError, ModelError):
        raise
    except Exception as exc:  # torch.load and load_state_dict raise many types for damaged files
        raise ModelError(
            f"Cannot resume from {path}: {type(exc).__name__}: {one_line(exc)}",
            "Start a new run in another folder.",
        ) from exc
    return step, student, optimizer

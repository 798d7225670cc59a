"""Knowledge distillation for classifiers (Hinton et al. 2015), and a demo on scikit-learn's digits.

``kd_loss`` is the classic recipe: the student matches the teacher's softened class distribution
(temperature ``T``) and, with weight ``1 - alpha``, the hard labels. The ``T**2`` factor keeps the
soft term's gradients at the same scale whatever ``T`` (they shrink as ``1/T**2``).

``digits_demo`` shows what it buys on a real dataset that ships with scikit-learn: a teacher MLP
trained on the labelled half, then a small student trained on a few labelled samples with and
without the teacher; both students are scored on held-out images neither model was trained on.
For detectors (no class-per-image labels, dense outputs) see ``distill``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgecv.backend import ConfigError


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    T: float = 4.0,
    alpha: float = 0.7,
) -> Tensor:
    """``alpha * T**2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels)``, batch mean.

    ``teacher_logits`` are treated as constants (no gradient reaches the teacher).
    """
    if not T > 0:
        raise ConfigError(f"Distillation temperature must be > 0, got {T}", "Pass e.g. T=4.0.")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"Distillation weight alpha must be in [0, 1], got {alpha}", "Pass e.g. alpha=0.7.")
    soft_student = F.log_softmax(student_logits / T, dim=-1)
    soft_teacher = F.log_softmax(teacher_logits.detach() / T, dim=-1)
    # kl_div(input, target) = KL(target || input); log_target avoids softmax underflow at low T.
    soft = F.kl_div(soft_student, soft_teacher, reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * T * T * soft + (1 - alpha) * hard


@attrs.frozen
class DigitsResult:
    """Held-out accuracies (0..1) of one run of ``digits_demo``."""

    teacher: float
    student_kd: float
    student_plain: float
    labelled: int
    """Labelled samples the students were trained on."""
    held_out: int
    """Images scored (never seen by teacher or students)."""


def _mlp(widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (inputs, outputs) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(inputs, outputs))
        if index < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _accuracy(model: nn.Module, features: Tensor, labels: Tensor) -> float:
    with torch.no_grad():
        return float((model(features).argmax(dim=1) == labels).float().mean())


def _train(
    model: nn.Module,
    features: Tensor,
    labels: Tensor,
    steps: int,
    teacher: nn.Module | None = None,
    T: float = 4.0,
    alpha: float = 0.7,
) -> None:
    """Full-batch Adam: the sets here are small enough for one batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    teacher_logits = None
    if teacher is not None:
        with torch.no_grad():
            teacher_logits = teacher(features)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        logits = model(features)
        if teacher_logits is None:
            loss = F.cross_entropy(logits, labels)
        else:
            loss = kd_loss(logits, teacher_logits, labels, T=T, alpha=alpha)
        torch.autograd.backward(loss)
        optimizer.step()
    model.eval()


def digits_demo(
    seed: int = 0,
    labelled: int = 50,
    student_hidden: int = 32,
    T: float = 4.0,
    alpha: float = 0.7,
    steps: int = 200,
) -> DigitsResult:
    """Teacher (64-128-10 MLP) trained on half of digits; two students (64-``student_hidden``-10)
    trained on ``labelled`` samples of that half, one with ``kd_loss`` against the teacher and one
    with cross-entropy alone, from the same initial weights; all three scored on the other half.

    About half a second per seed on one CPU core.
    """
    try:
        from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError(
            "The digits demo needs scikit-learn, which is not installed", "Run: pip install scikit-learn"
        ) from exc
    digits = load_digits()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(digits.target), generator=generator)
    features = torch.as_tensor(digits.data, dtype=torch.float32)[order] / 16.0
    labels = torch.as_tensor(digits.target, dtype=torch.long)[order]
    half = len(labels) // 2
    if not 0 < labelled <= half:
        raise ConfigError(f"labelled must be in 1..{half}, got {labelled}", "Pass e.g. labelled=50.")
    train_x, train_y, test_x, test_y = features[:half], labels[:half], features[half:], labels[half:]

    torch.manual_seed(seed)
    teacher = _mlp([64, 128, 10])
    _train(teacher, train_x, train_y, steps)
    few_x, few_y = train_x[:labelled], train_y[:labelled]
    plain = _mlp([64, student_hidden, 10])
    distilled = _mlp([64, student_hidden, 10])
    distilled.load_state_dict(plain.state_dict())  # same start: only the loss differs
    _train(plain, few_x, few_y, steps)
    _train(distilled, few_x, few_y, steps, teacher=teacher, T=T, alpha=alpha)
    return DigitsResult(
        teacher=_accuracy(teacher, test_x, test_y),
        student_kd=_accuracy(distilled, test_x, test_y),
        student_plain=_accuracy(plain, test_x, test_y),
        labelled=labelled,
        held_out=len(test_y),
    )

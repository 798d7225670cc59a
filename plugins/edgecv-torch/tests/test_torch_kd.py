"""Classifier knowledge distillation: the loss is the seed's formula, and on scikit-learn's digits a
small student trained with it beats the same student trained on the labels alone."""

from __future__ import annotations

import statistics

import pytest
import torch
import torch.nn.functional as F

from edgecv.errors import ConfigError
from edgecv_torch.kd import digits_demo, kd_loss


def test_kd_loss_is_the_weighted_sum_of_scaled_kl_and_cross_entropy() -> None:
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(5, 10, generator=generator)
    teacher = torch.randn(5, 10, generator=generator)
    labels = torch.tensor([0, 3, 9, 1, 4])
    T, alpha = 4.0, 0.7
    p_teacher = torch.softmax(teacher / T, dim=1)
    p_student = torch.softmax(student / T, dim=1)
    kl = (p_teacher * (p_teacher.log() - p_student.log())).sum(dim=1).mean()
    expected = alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(student, labels)
    torch.testing.assert_close(kd_loss(student, teacher, labels, T=T, alpha=alpha), expected)


def test_kd_loss_limits() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    labels = torch.tensor([0, 2])
    # alpha 0: cross-entropy only; identical logits: the soft term vanishes.
    torch.testing.assert_close(
        kd_loss(logits, logits * 3, labels, alpha=0.0), F.cross_entropy(logits, labels)
    )
    torch.testing.assert_close(kd_loss(logits, logits, labels, alpha=1.0), torch.tensor(0.0))


def test_kd_loss_does_not_train_the_teacher() -> None:
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    torch.autograd.backward(kd_loss(student, teacher, torch.tensor([0, 1, 2, 0])))
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


@pytest.mark.parametrize(("T", "alpha"), [(0.0, 0.7), (-1.0, 0.7), (4.0, 1.5), (4.0, -0.1)])
def test_kd_loss_rejects_bad_settings(T: float, alpha: float) -> None:
    logits = torch.zeros(1, 3)
    with pytest.raises(ConfigError) as error:
        kd_loss(logits, logits, torch.tensor([0]), T=T, alpha=alpha)
    assert "\n" not in str(error.value)


def test_kd_student_beats_the_label_only_student_on_held_out_digits() -> None:
    torch.set_num_threads(1)  # deterministic and fast for these tiny matrices
    results = [digits_demo(seed=seed, labelled=50) for seed in range(3)]
    gains = [result.student_kd - result.student_plain for result in results]
    # Measured over seeds 0..11 (898 held-out images each): KD 0.920 vs plain 0.817 on average,
    # gain per seed 0.058..0.161, means of 3 consecutive seeds 0.082..0.135. A 0.04 margin on the
    # mean is half the smallest 3-seed mean; each seed must still improve.
    assert statistics.mean(gains) >= 0.04, results
    assert min(gains) > 0, results
    assert all(result.teacher > 0.93 for result in results), results
    assert results[0].held_out > 800 and results[0].labelled == 50

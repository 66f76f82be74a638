"""BYOL and DINO losses against plain reference implementations written here, sample by sample."""

from __future__ import annotations

import math

import pytest
import torch

from distributed_ssl.engine.schedules import teacher_temp_schedule
from distributed_ssl.losses.byol_loss import BYOLLoss
from distributed_ssl.losses.dino_loss import DINOLoss


def _byol_reference(predictions, targets):
    """Mean over view pairs i ≠ j of the mean over samples of ‖p/‖p‖ − z/‖z‖‖²."""
    terms = []
    for i, p in enumerate(predictions):
        for j, z in enumerate(targets):
            if i == j:
                continue
            per_sample = []
            for a, b in zip(p.tolist(), z.tolist(), strict=True):
                na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
                per_sample.append(sum((x / na - y / nb) ** 2 for x, y in zip(a, b, strict=True)))
            terms.append(sum(per_sample) / len(per_sample))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("views", [2, 3])
def test_byol_loss_matches_reference_and_stops_gradient_at_targets(views):
    torch.manual_seed(0)
    preds = [torch.randn(5, 7, requires_grad=True) for _ in range(views)]
    targets = [torch.randn(5, 7, requires_grad=True) for _ in range(views)]
    loss = BYOLLoss()(preds, targets)
    assert loss.item() == pytest.approx(_byol_reference(preds, targets), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in preds)
    assert all(t.grad is None for t in targets)
    same = [p.detach() for p in preds]
    assert BYOLLoss()(same, same[::-1]).item() == pytest.approx(_byol_reference(same, same[::-1]), abs=1e-5)


def _softmax(row, temp):
    m = max(row)
    e = [math.exp((x - m) / temp) for x in row]
    return [x / sum(e) for x in e]


def _dino_reference(student, teacher, center, teacher_temp, student_temp):
    """For every teacher view i and student view j ≠ i, the mean over samples of −Σ_k q_k log p_k."""
    total, pairs = 0.0, 0
    for i, t in enumerate(teacher):
        for j, s in enumerate(student):
            if i == j:
                continue
            ce = []
            for t_row, s_row in zip(t.tolist(), s.tolist(), strict=True):
                q = _softmax([x - c for x, c in zip(t_row, center, strict=True)], teacher_temp)
                p = _softmax(s_row, student_temp)
                ce.append(-sum(qk * math.log(pk) for qk, pk in zip(q, p, strict=True)))
            total += sum(ce) / len(ce)
            pairs += 1
    return total / pairs


def test_dino_loss_matches_reference_over_global_and_local_pairs_and_updates_center():
    torch.manual_seed(1)
    k, b = 6, 4
    teacher = [torch.randn(b, k) for _ in range(2)]
    student = [torch.randn(b, k, requires_grad=True) for _ in range(2 + 3)]  # 2 global + 3 local
    criterion = DINOLoss(k, student_temp=0.1, center_momentum=0.9)
    criterion.center.copy_(torch.randn(1, k) * 0.1)
    center = criterion.center[0].tolist()
    loss = criterion(student, teacher, teacher_temp=0.05)
    assert loss.item() == pytest.approx(_dino_reference(student, teacher, center, 0.05, 0.1), rel=1e-5)
    # 2 teacher views × 5 student views − 2 same-view pairs = 8 terms; every student view gets a gradient.
    loss.backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
    batch_mean = torch.cat(teacher).mean(dim=0)
    expected = [0.9 * c + 0.1 * m for c, m in zip(center, batch_mean.tolist(), strict=True)]
    assert criterion.center[0].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_dino_loss_needs_two_views():
    with pytest.raises(ValueError, match="two views"):
        DINOLoss(4)([torch.randn(2, 4)], [torch.randn(2, 4)], 0.04)


def test_teacher_temperature_warms_up_linearly_then_stays():
    temps = teacher_temp_schedule(10, 0.04, 0.07, 3)
    assert temps.tolist() == pytest.approx([0.04, 0.05, 0.06] + [0.07] * 7)

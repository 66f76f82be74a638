"""DINO's self-distillation loss: the student matches the centred, sharpened teacher over view pairs."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class DINOLoss(nn.Module):
    """Cross-entropy H(teacher view i, student view j) averaged over every pair with i ≠ j.

    `teacher_out` holds one [B, K] tensor per global view; `student_out` holds the same global views first (in
    the same order), then the local views. Teacher outputs are centred (minus an EMA of their batch mean) and
    sharpened (a low `teacher_temp`): centring alone would collapse to uniform outputs, sharpening alone to one
    prototype, together they balance. The centre is a buffer, so it is saved with the checkpoint; its batch mean
    is all-reduced over ranks, so every rank keeps the same centre.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9,
                 gather_distributed: bool = True):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.gather_distributed = gather_distributed
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student_out: list[torch.Tensor], teacher_out: list[torch.Tensor],
                teacher_temp: float) -> torch.Tensor:
        if len(student_out) < len(teacher_out) or len(teacher_out) < 1:
            raise ValueError(f"DINO needs at least as many student views ({len(student_out)}) as teacher views "
                             f"({len(teacher_out)}), and one teacher view")
        center = self.center.float()
        targets = [F.softmax((t.detach().float() - center) / teacher_temp, dim=-1) for t in teacher_out]
        log_probs = [F.log_softmax(s.float() / self.student_temp, dim=-1) for s in student_out]
        total, terms = student_out[0].new_zeros((), dtype=torch.float32), 0
        for i, q in enumerate(targets):
            for j, log_p in enumerate(log_probs):
                if i == j:  # the same view seen by both networks carries no learning signal
                    continue
                total = total + (-q * log_p).sum(dim=-1).mean()
                terms += 1
        if terms == 0:
            raise ValueError("DINO needs at least two views (one teacher view and another student view)")
        self.update_center(teacher_out)
        return total / terms

    @torch.no_grad()
    def update_center(self, teacher_out: list[torch.Tensor]) -> None:
        """center ← m·center + (1 − m)·mean of the teacher outputs of this step over every rank."""
        stacked = torch.cat([t.detach().float() for t in teacher_out])
        total = torch.cat([stacked.sum(dim=0), stacked.new_tensor([stacked.shape[0]])])
        if self.gather_distributed and dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
        batch_center = (total[:-1] / total[-1]).unsqueeze(0)
        m = self.center_momentum
        self.center.copy_((self.center.float() * m + batch_center * (1 - m)).to(self.center.dtype))

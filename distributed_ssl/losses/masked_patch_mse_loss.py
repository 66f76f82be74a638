"""MAE reconstruction loss: MSE on (optionally per-patch normalised) targets, over hidden patches only."""

from __future__ import annotations

import torch
from torch import nn


class MaskedPatchMSELoss(nn.Module):
    def __init__(self, norm_targets: bool = True, eps: float = 1e-6):
        super().__init__()
        self.norm_targets = norm_targets
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """pred, target [B, N, P]; mask [B, N] with True where the encoder did not see the patch."""
        target = target.float()
        if self.norm_targets:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True, unbiased=True)
            target = (target - mean) / (var + self.eps).sqrt()
        per_patch = ((pred.float() - target) ** 2).mean(dim=-1)
        weights = mask.float()
        return (per_patch * weights).sum() / weights.sum().clamp(min=1.0)

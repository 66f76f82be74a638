"""BYOL's regression loss: online predictions regress the EMA target's projections of the other view."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def normalized_cosine_regression(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖p/‖p‖ − z/‖z‖‖² = 2 − 2·cos(p, z) per sample, averaged over the batch; no gradient into the target."""
    p = F.normalize(prediction.float(), dim=-1)
    z = F.normalize(target.detach().float(), dim=-1)
    return (2 - 2 * (p * z).sum(dim=-1)).mean()


class BYOLLoss(nn.Module):
    """Symmetric over views: every view's prediction regresses every other view's target, and the terms are
    averaged (for two views: (ℓ(p0, z1) + ℓ(p1, z0)) / 2), so the loss lies in [0, 4] whatever the view count.

    Each term is a per-sample mean, so data-parallel ranks need no gather: averaging their gradients gives the
    gradient of the whole batch.
    """

    def forward(self, predictions: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
        if len(predictions) != len(targets) or len(predictions) < 2:
            raise ValueError(f"BYOL needs the same number (≥ 2) of predictions and targets, got "
                             f"{len(predictions)} and {len(targets)}")
        terms = [normalized_cosine_regression(p, z)
                 for i, p in enumerate(predictions) for j, z in enumerate(targets) if i != j]
        return torch.stack(terms).mean()

"""Chamfer-L2 between predicted and true point patches, over the patches the encoder did not see (Point-MAE)."""

from __future__ import annotations

import torch
from torch import nn


def chamfer_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-set Chamfer-L2 of a [M, P, 3] and b [M, Q, 3]: mean squared distance from each point to its nearest
    point in the other set, summed over both directions → [M]."""
    d = torch.cdist(a, b).pow(2)  # [M, P, Q]
    return d.min(dim=2).values.mean(dim=1) + d.min(dim=1).values.mean(dim=1)


class MaskedChamferLoss(nn.Module):
    """pred, target [B, G, K·3] (flattened xyz of each patch), mask [B, G] with True where hidden.

    Order within a patch carries no meaning, so the comparison is between sets, not point by point.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, g, _ = pred.shape
        hidden = mask.bool()
        if not bool(hidden.any()):
            return pred.sum() * 0.0  # keeps the graph (and every rank's collectives) intact
        p = pred.float()[hidden].reshape(-1, pred.shape[-1] // 3, 3)
        t = target.float()[hidden].reshape(-1, target.shape[-1] // 3, 3)
        return chamfer_l2(p, t).mean()

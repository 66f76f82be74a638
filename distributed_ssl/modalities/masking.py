"""Random patch masks with an exact ratio, so every row keeps the same number of visible patches."""

from __future__ import annotations

import torch


def random_patch_mask(batch: int, num_patches: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """Boolean [batch, num_patches], True = hidden. Exactly round(ratio * num_patches) per row."""
    num_masked = int(round(ratio * num_patches))
    num_masked = min(max(num_masked, 1), num_patches - 1)
    order = torch.rand(batch, num_patches, generator=gen).argsort(dim=1)
    mask = torch.zeros(batch, num_patches, dtype=torch.bool)
    mask.scatter_(1, order[:, :num_masked], True)
    return mask

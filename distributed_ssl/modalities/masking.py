"""Patch masks made on the data side: random masks with an exact ratio (MAE), so every row keeps the same number
of visible patches, and the dispatch to JEPA's multi-block masks by `ViewSpec.mask_kind`."""

from __future__ import annotations

import numpy as np
import torch

from distributed_ssl.config.method_configs import MultiblockMaskConfig, RandomMaskConfig
from distributed_ssl.modalities.multiblock_masking import grid_multiblock_masks, point_multiblock_masks
from distributed_ssl.modalities.view_spec import ViewSpec


def random_patch_mask(batch: int, num_patches: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """Boolean [batch, num_patches], True = hidden. Exactly round(ratio * num_patches) per row."""
    num_masked = int(round(ratio * num_patches))
    num_masked = min(max(num_masked, 1), num_patches - 1)
    order = torch.rand(batch, num_patches, generator=gen).argsort(dim=1)
    mask = torch.zeros(batch, num_patches, dtype=torch.bool)
    mask.scatter_(1, order[:, :num_masked], True)
    return mask


def grid_masks(spec: ViewSpec, batch: int, grid: tuple[int, int],
               cfg: RandomMaskConfig | MultiblockMaskConfig,
               gen: torch.Generator) -> dict[str, np.ndarray]:
    """The mask arrays a method asked for, on a (rows, cols) patch grid: `mask` (+ `target_masks`)."""
    if spec.mask_kind == "multiblock":
        return {k: v.numpy() for k, v in grid_multiblock_masks(batch, grid, cfg, gen).items()}
    return {"mask": random_patch_mask(batch, grid[0] * grid[1], cfg.ratio, gen).numpy()}


def point_masks(spec: ViewSpec, centres: torch.Tensor, cfg: RandomMaskConfig | MultiblockMaskConfig,
                gen: torch.Generator) -> dict[str, np.ndarray]:
    """The mask arrays a method asked for, over point patches with centres [B, G, 3]."""
    if spec.mask_kind == "multiblock":
        return {k: v.numpy() for k, v in point_multiblock_masks(centres, cfg, gen).items()}
    return {"mask": random_patch_mask(centres.shape[0], centres.shape[1], cfg.ratio, gen).numpy()}

"""Multi-block masks for JEPA (I-JEPA, Assran et al. 2023): K target blocks to predict, one large context block
to predict them from, with every target patch removed from the context.

Made on the data side, batched in torch. Sizes are fixed per data-side batch so masks stack and every row keeps
the same number of patches: the target block shape is drawn once per batch (positions per sample), and the context
is cut to the smallest context of the batch by a random subset. A training batch can still mix rows of several
data-side batches (the local shuffle buffer), so the method calls `equalize_masks` on it, which truncates every
row to the batch's smallest context and block, as I-JEPA's mask collator does. Two layouts share that contract:

- a patch grid (images, spectrograms): blocks are axis-aligned rectangles of H × W patches;
- point patches (LiDAR): a block is the k nearest patch centres of a random centre, so it is spatially contiguous.

Returned masks: `mask` [B, N] (True = hidden from the context encoder, the convention of `keep_visible`) and
`target_masks` [B, K, N] (True = patch of target block k).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from distributed_ssl.config.method_configs import MultiblockMaskConfig

RETRIES = 20  # redraws of a row whose targets leave too little context


def _uniform(lo: float, hi: float, gen: torch.Generator) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def min_context(num_patches: int) -> int:
    """Fewest context patches a row may keep: a tenth of the patches, at least one."""
    return max(1, num_patches // 10)


def _trim_context(context: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Keep a random subset of each row's context patches, as many as the smallest row has."""
    keep = int(context.sum(dim=1).min())
    scores = torch.rand(context.shape, generator=gen)
    scores[~context] = 2.0  # never chosen before a context patch
    chosen = scores.argsort(dim=1)[:, :keep]
    trimmed = torch.zeros_like(context)
    trimmed.scatter_(1, chosen, True)
    return trimmed


def _with_enough_context(draw: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], batch: int,
                         num_patches: int, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Call `draw(rows)` → (targets [R, K, N], context block [R, N]) for row indices `rows`, redraw the rows
    whose targets leave too little context, and return (targets, context without the targets)."""
    targets, context = draw(torch.arange(batch))
    need = min_context(num_patches)
    for _ in range(RETRIES):
        bad = ((context & ~targets.any(dim=1)).sum(dim=1) < need).nonzero().squeeze(1)
        if len(bad) == 0:
            break
        targets[bad], context[bad] = draw(bad)
    context = context & ~targets.any(dim=1)
    if int(context.sum(dim=1).min()) < 1:
        raise ValueError(f"{what}: the target blocks cover the whole context block; lower mask.num_targets or "
                         "mask.target_scale_max, or raise mask.context_scale_min")
    return targets, context


def block_shape(grid: tuple[int, int], scale: float, aspect: float) -> tuple[int, int]:
    """(rows, cols) of a block with `scale` of the grid's patches and height/width ratio `aspect`."""
    gh, gw = grid
    area = scale * gh * gw
    h = int(round(math.sqrt(area * aspect)))
    w = int(round(math.sqrt(area / aspect)))
    return min(max(h, 1), gh), min(max(w, 1), gw)


def _rectangles(rows: int, count: int, grid: tuple[int, int], shape: tuple[int, int],
                gen: torch.Generator) -> torch.Tensor:
    """[rows, count, gh * gw] masks of `count` rectangles of `shape` per row, at random positions."""
    (gh, gw), (h, w) = grid, shape
    top = torch.randint(0, gh - h + 1, (rows, count, 1, 1), generator=gen)
    left = torch.randint(0, gw - w + 1, (rows, count, 1, 1), generator=gen)
    ys = torch.arange(gh).view(1, 1, gh, 1)
    xs = torch.arange(gw).view(1, 1, 1, gw)
    inside = (ys >= top) & (ys < top + h) & (xs >= left) & (xs < left + w)
    return inside.reshape(rows, count, gh * gw)


def grid_multiblock_masks(batch: int, grid: tuple[int, int], cfg: MultiblockMaskConfig,
                          gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Multi-block masks on a `grid` = (rows, cols) patch grid in row-major patch order."""
    num = grid[0] * grid[1]
    target_shape = block_shape(grid, _uniform(cfg.target_scale_min, cfg.target_scale_max, gen),
                               _uniform(cfg.target_aspect_min, cfg.target_aspect_max, gen))
    side = math.sqrt(_uniform(cfg.context_scale_min, cfg.context_scale_max, gen))
    context_shape = (min(max(round(side * grid[0]), 1), grid[0]), min(max(round(side * grid[1]), 1), grid[1]))

    def draw(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        targets = _rectangles(len(rows), cfg.num_targets, grid, target_shape, gen)
        return targets, _rectangles(len(rows), 1, grid, context_shape, gen)[:, 0]

    targets, context = _with_enough_context(draw, batch, num, f"a {grid[0]}×{grid[1]} patch grid")
    return {"mask": ~_trim_context(context, gen), "target_masks": targets}


def _nearest_groups(centres: torch.Tensor, seeds: torch.Tensor, size: int) -> torch.Tensor:
    """[R, S, G] masks: for each seed index, the `size` patch centres nearest to that seed's centre."""
    rows, num_seeds = seeds.shape
    seed_xyz = torch.gather(centres, 1, seeds.unsqueeze(-1).expand(-1, -1, 3))  # [R, S, 3]
    nearest = torch.cdist(seed_xyz, centres).topk(size, dim=-1, largest=False).indices  # [R, S, size]
    out = torch.zeros(rows, num_seeds, centres.shape[1], dtype=torch.bool)
    out.scatter_(2, nearest, True)
    return out


def point_multiblock_masks(centres: torch.Tensor, cfg: MultiblockMaskConfig, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Multi-block masks over point patches with centres [B, G, 3]: each block is the nearest centres of a seed."""
    batch, num = centres.shape[:2]
    centres = centres.float()
    target_size = min(max(int(round(_uniform(cfg.target_scale_min, cfg.target_scale_max, gen) * num)), 1), num - 1)
    context_size = min(max(int(round(_uniform(cfg.context_scale_min, cfg.context_scale_max, gen) * num)), 1), num)

    def draw(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seeds = torch.randint(0, num, (len(rows), cfg.num_targets + 1), generator=gen)
        targets = _nearest_groups(centres[rows], seeds[:, :-1], target_size)
        return targets, _nearest_groups(centres[rows], seeds[:, -1:], context_size)[:, 0]

    targets, context = _with_enough_context(draw, batch, num, f"{num} point patches")
    return {"mask": ~_trim_context(context, gen), "target_masks": targets}


def _first(mask: torch.Tensor, count: int) -> torch.Tensor:
    """The first `count` True entries of each row (last dim), in patch order; the rest set False."""
    return mask & (mask.cumsum(dim=-1) <= count)


def equalize_masks(mask: torch.Tensor, target_masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncate each row's context and each target block to the smallest of the batch (first patches in patch
    order; a truncated rectangle stays contiguous), so the rows stack. A no-op on a batch from one data-side call.

    mask [B, N] (True = outside the context), target_masks [B, K, N] → the same shapes, on the same device."""
    context = ~mask
    context_count = int(context.sum(dim=1).min())
    block_count = int(target_masks.sum(dim=2).min())
    if context_count < 1 or block_count < 1:
        raise ValueError(f"a JEPA batch has a row with {context_count} context and {block_count} target patches; "
                         "both must be at least 1")
    return ~_first(context, context_count), _first(target_masks, block_count)

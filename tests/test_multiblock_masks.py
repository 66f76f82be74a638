"""JEPA multi-block masks: the asked sizes, no target patch in the context, and contiguous blocks."""

from __future__ import annotations

import pytest
import torch

from distributed_ssl.config import load_config
from distributed_ssl.config.method_configs import MultiblockMaskConfig as MaskConfig
from distributed_ssl.modalities.lidar import LidarModality
from distributed_ssl.modalities.multiblock_masking import (
    block_shape,
    equalize_masks,
    grid_multiblock_masks,
    min_context,
    point_multiblock_masks,
)
from distributed_ssl.modalities.view_spec import ViewSpec

JEPA_SPEC = ViewSpec(num_views=1, augment="none", mask=True, mask_kind="multiblock")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _check_common(out: dict[str, torch.Tensor], batch: int, num_targets: int, num_patches: int) -> None:
    mask, targets = out["mask"], out["target_masks"]
    assert mask.shape == (batch, num_patches) and targets.shape == (batch, num_targets, num_patches)
    assert mask.dtype == torch.bool and targets.dtype == torch.bool
    context = ~mask
    counts = context.sum(dim=1)
    assert bool((counts == counts[0]).all()) and int(counts[0]) >= min_context(num_patches)  # rows stack
    block_counts = targets.sum(dim=2)
    assert bool((block_counts == block_counts[0, 0]).all()) and int(block_counts[0, 0]) >= 1
    assert not bool((context.unsqueeze(1) & targets).any())  # no target patch is visible to the context


@pytest.mark.parametrize("grid", [(8, 8), (4, 7), (14, 14)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grid_blocks_have_asked_sizes_no_overlap_and_are_rectangles(grid, seed):
    cfg = MaskConfig(num_targets=4, target_scale_min=0.15, target_scale_max=0.2)
    batch, (gh, gw) = 16, grid
    out = grid_multiblock_masks(batch, grid, cfg, _gen(seed))
    _check_common(out, batch, 4, gh * gw)
    area = int(out["target_masks"][0, 0].sum())
    assert 0.5 * 0.15 * gh * gw <= area <= 2.0 * 0.2 * gh * gw
    blocks = out["target_masks"].view(batch, 4, gh, gw)
    for block in blocks.reshape(-1, gh, gw):  # contiguous: the block fills its bounding box exactly
        rows, cols = block.any(dim=1).nonzero().squeeze(1), block.any(dim=0).nonzero().squeeze(1)
        height, width = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
        assert height * width == int(block.sum()) == area
        assert len(rows) == height and len(cols) == width
    assert block_shape(grid, 0.2, 1.0)[0] * block_shape(grid, 0.2, 1.0)[1] == pytest.approx(0.2 * gh * gw, rel=0.5)


def test_grid_context_is_one_block_minus_targets_and_masks_vary():
    cfg = MaskConfig(num_targets=2, target_scale_min=0.1, target_scale_max=0.1, context_scale_min=0.5,
                     context_scale_max=0.5)
    out = grid_multiblock_masks(32, (10, 10), cfg, _gen(3))
    context = (~out["mask"]).view(32, 10, 10)
    for row in context:  # every kept context patch lies inside one 7x7 block (sqrt(0.5) of each side)
        ys, xs = row.nonzero(as_tuple=True)
        assert int(ys.max() - ys.min()) < 7 and int(xs.max() - xs.min()) < 7
    assert not torch.equal(out["target_masks"][0], out["target_masks"][1])
    again = grid_multiblock_masks(32, (10, 10), cfg, _gen(3))
    assert torch.equal(again["mask"], out["mask"]) and torch.equal(again["target_masks"], out["target_masks"])


def test_equalize_truncates_mixed_rows_to_the_smallest_context_and_block():
    small = grid_multiblock_masks(4, (8, 8), MaskConfig(target_scale_min=0.1, target_scale_max=0.1), _gen(0))
    large = grid_multiblock_masks(4, (8, 8), MaskConfig(target_scale_min=0.25, target_scale_max=0.25), _gen(1))
    mask, targets = (torch.cat([small[k], large[k]]) for k in ("mask", "target_masks"))
    eq_mask, eq_targets = equalize_masks(mask, targets)
    assert (~eq_mask).sum(1).unique().tolist() == [int((~mask).sum(1).min())]
    assert eq_targets.sum(2).unique().tolist() == [int(targets.sum(2).min())]
    assert not bool((~eq_mask & mask).any()) and not bool((eq_targets & ~targets).any())  # subsets
    assert not bool(((~eq_mask).unsqueeze(1) & eq_targets).any())
    same_mask, same_targets = equalize_masks(small["mask"], small["target_masks"])  # one data-side batch: no-op
    assert torch.equal(same_mask, small["mask"]) and torch.equal(same_targets, small["target_masks"])


def test_targets_that_cover_the_context_fail_naming_the_keys():
    cfg = MaskConfig(num_targets=16, target_scale_min=0.9, target_scale_max=0.95)
    with pytest.raises(ValueError, match="mask.num_targets"):
        grid_multiblock_masks(4, (4, 4), cfg, _gen(0))


@pytest.mark.parametrize("seed", [0, 1])
def test_point_blocks_are_nearest_centres_of_a_seed_and_avoid_the_context(seed):
    batch, groups = 8, 32
    centres = torch.randn(batch, groups, 3, generator=_gen(10 + seed))
    cfg = MaskConfig(num_targets=4, target_scale_min=0.15, target_scale_max=0.2)
    out = point_multiblock_masks(centres, cfg, _gen(seed))
    _check_common(out, batch, 4, groups)
    size = int(out["target_masks"][0, 0].sum())
    assert round(0.15 * groups) <= size <= round(0.2 * groups)
    for b in range(batch):
        dist = torch.cdist(centres[b], centres[b])
        for block in out["target_masks"][b]:
            members = block.nonzero().squeeze(1)
            # contiguous: some member's `size` nearest centres are exactly the block
            assert any(set(dist[m].topk(size, largest=False).indices.tolist()) == set(members.tolist())
                       for m in members)


def test_lidar_views_carry_multiblock_masks_over_their_patch_centres():
    cfg = load_config(None, ["modality.name=lidar", "modality.num_points=256", "modality.num_groups=16",
                             "modality.group_size=8", "method.name=jepa"])
    raw = torch.randn(4, 256, 4, generator=_gen(5))
    out = LidarModality(cfg.modality, cfg.augment, cfg.mask).make_views(raw, JEPA_SPEC, _gen(6))
    assert out["view_0"].shape == (4, 16, 9, 4)
    _check_common({k: torch.from_numpy(out[k]) for k in ("mask", "target_masks")}, 4, cfg.mask.num_targets, 16)


def test_mae_masks_are_unchanged_by_the_mask_kind_dispatch():
    from distributed_ssl.modalities.image import ImageModality
    from distributed_ssl.modalities.masking import random_patch_mask

    cfg = load_config(None, ["method.name=mae", "mask.ratio=0.75"])
    modality = ImageModality(cfg.modality, cfg.augment, cfg.mask, cfg.model.patch_size)
    out = modality.make_views(torch.rand(4, 3, 32, 32), ViewSpec(1, "none", True), _gen(0))
    assert set(out) == {"view_0", "mask"}
    assert torch.equal(torch.from_numpy(out["mask"]), random_patch_mask(4, 64, 0.75, _gen(0)))

"""Batched point cloud augmentations on [B, N, C] clouds (xyz first); every op keeps N fixed.

Cropping and dropout remove points; the kept ones are resampled (with replacement) back to N, so a batch stays
one tensor and the tokenizer sees the same number of points in every view.
"""

from __future__ import annotations

import math

import torch

from distributed_ssl.config.modality_configs import LidarAugmentConfig


def _uniform(shape: tuple[int, ...], lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def rotate_z(points: torch.Tensor, max_deg: float, gen: torch.Generator) -> torch.Tensor:
    """Rotate each cloud about the vertical axis by a uniform angle in ±max_deg (gravity stays down)."""
    if max_deg <= 0:
        return points
    theta = _uniform((points.shape[0],), -max_deg, max_deg, gen) * (math.pi / 180.0)
    c, s = torch.cos(theta).view(-1, 1), torch.sin(theta).view(-1, 1)
    x, y = points[..., 0], points[..., 1]
    out = points.clone()
    out[..., 0], out[..., 1] = c * x - s * y, s * x + c * y
    return out


def random_scale(points: torch.Tensor, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    scale = _uniform((points.shape[0], 1), lo, hi, gen)
    out = points.clone()
    out[..., :3] *= scale.unsqueeze(-1)
    return out


def jitter(points: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    if sigma <= 0:
        return points
    out = points.clone()
    out[..., :3] += sigma * torch.randn(out[..., :3].shape, generator=gen)
    return out


def keep_first(points: torch.Tensor, order: torch.Tensor, keep: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Keep the first `keep[b]` points of each cloud in `order`, resampled uniformly back to N points."""
    b, n, c = points.shape
    pick = (torch.rand(b, n, generator=gen) * keep.view(-1, 1)).long().clamp(max=n - 1)
    idx = torch.gather(order, 1, pick)
    return torch.gather(points, 1, idx.unsqueeze(-1).expand(-1, -1, c))


def random_crop(points: torch.Tensor, min_fraction: float, gen: torch.Generator) -> torch.Tensor:
    """Keep the nearest fraction (uniform in [min_fraction, 1]) of points around a random point, re-centred."""
    if min_fraction >= 1:
        return points
    b, n, _ = points.shape
    seed = points[torch.arange(b), torch.randint(0, n, (b,), generator=gen), :3]
    order = (points[..., :3] - seed.unsqueeze(1)).pow(2).sum(-1).argsort(dim=1)
    keep = (_uniform((b,), min_fraction, 1.0, gen) * n).long().clamp(min=1)
    out = keep_first(points, order, keep, gen)
    out[..., :3] -= out[..., :3].mean(dim=1, keepdim=True)
    return out


def random_dropout(points: torch.Tensor, max_fraction: float, gen: torch.Generator) -> torch.Tensor:
    """Drop a random fraction (uniform in [0, max_fraction]) of points."""
    if max_fraction <= 0:
        return points
    b, n, _ = points.shape
    order = torch.rand(b, n, generator=gen).argsort(dim=1)
    keep = ((1 - _uniform((b,), 0.0, max_fraction, gen)) * n).long().clamp(min=1)
    return keep_first(points, order, keep, gen)


def strong_points(points: torch.Tensor, cfg: LidarAugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """The SimCLR chain: crop, dropout, rotation, scale, jitter."""
    x = random_crop(points, cfg.point_crop_min, gen)
    x = random_dropout(x, cfg.point_dropout_max, gen)
    x = rotate_z(x, cfg.point_rotation_deg, gen)
    x = random_scale(x, cfg.point_scale_min, cfg.point_scale_max, gen)
    return jitter(x, cfg.point_jitter_sigma, gen)


def local_points(points: torch.Tensor, scale: tuple[float, float], num_out: int, cfg: LidarAugmentConfig,
                 gen: torch.Generator) -> torch.Tensor:
    """A DINO local view: the nearest fraction (uniform in `scale`) of points around a random seed point,
    resampled to `num_out` points and re-centred, then dropout, rotation, scale and jitter as in `strong_points`."""
    b, n, c = points.shape
    seed = points[torch.arange(b), torch.randint(0, n, (b,), generator=gen), :3]
    order = (points[..., :3] - seed.unsqueeze(1)).pow(2).sum(-1).argsort(dim=1)
    keep = (_uniform((b,), scale[0], scale[1], gen) * n).long().clamp(min=1, max=n)
    pick = (torch.rand(b, num_out, generator=gen) * keep.view(-1, 1)).long().clamp(max=n - 1)
    idx = torch.gather(order, 1, pick)
    x = torch.gather(points, 1, idx.unsqueeze(-1).expand(-1, -1, c))
    x[..., :3] -= x[..., :3].mean(dim=1, keepdim=True)
    x = random_dropout(x, cfg.point_dropout_max, gen)
    x = rotate_z(x, cfg.point_rotation_deg, gen)
    x = random_scale(x, cfg.point_scale_min, cfg.point_scale_max, gen)
    return jitter(x, cfg.point_jitter_sigma, gen)


def light_points(points: torch.Tensor, cfg: LidarAugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Rotation and scale only, as Point-MAE pretraining uses."""
    return random_scale(rotate_z(points, cfg.point_rotation_deg, gen), cfg.point_scale_min, cfg.point_scale_max, gen)

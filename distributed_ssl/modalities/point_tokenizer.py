"""Point clouds → patch tokens, Point-MAE style: farthest point sampling picks patch centres, each centre's
k nearest neighbours form its patch, expressed relative to the centre. Batched torch, no per-point Python.

A tokenised cloud is one fixed-shape tensor [B, G, 1 + K, C]: row 0 of each group is the centre point in cloud
coordinates, rows 1..K its neighbours with xyz relative to the centre (other channels, e.g. intensity, as they are).
"""

from __future__ import annotations

import torch


def farthest_point_sample(xyz: torch.Tensor, num: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """Indices [B, num] of points that greedily maximise the distance to those already picked.

    Starts from a random point with `gen`, else from point 0, so evaluation is deterministic. `num` iterations
    over the batch; each is one vectorised distance update.
    """
    b, n, _ = xyz.shape
    if num > n:
        raise ValueError(f"cannot pick {num} centres from {n} points")
    picked = torch.empty(b, num, dtype=torch.long)
    nearest = torch.full((b, n), float("inf"), dtype=xyz.dtype)
    current = torch.randint(0, n, (b,), generator=gen) if gen is not None else torch.zeros(b, dtype=torch.long)
    rows = torch.arange(b)
    for i in range(num):
        picked[:, i] = current
        d = (xyz - xyz[rows, current].unsqueeze(1)).pow(2).sum(-1)
        nearest = torch.minimum(nearest, d)
        current = nearest.argmax(dim=1)
    return picked


def knn_indices(xyz: torch.Tensor, centers: torch.Tensor, k: int) -> torch.Tensor:
    """[B, G, k] indices of each centre's k nearest points (the centre itself first, at distance 0)."""
    d = torch.cdist(centers, xyz)  # [B, G, N]
    return d.topk(k, dim=-1, largest=False).indices


def gather_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """points [B, N, C], idx [B, ...] → [B, ..., C]."""
    b, c = points.shape[0], points.shape[-1]
    flat = idx.reshape(b, -1)
    out = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, c))
    return out.reshape(*idx.shape, c)


def tokenize(points: torch.Tensor, num_groups: int, group_size: int,
             gen: torch.Generator | None = None) -> torch.Tensor:
    """[B, N, C ≥ 3] → [B, G, 1 + K, C]: centre row, then K neighbours with xyz relative to the centre."""
    xyz = points[..., :3].contiguous()
    centre_idx = farthest_point_sample(xyz, num_groups, gen)
    centres = gather_points(points, centre_idx)  # [B, G, C]
    groups = gather_points(points, knn_indices(xyz, centres[..., :3], group_size)).clone()  # [B, G, K, C]
    groups[..., :3] -= centres[..., None, :3]
    return torch.cat([centres.unsqueeze(2), groups], dim=2)

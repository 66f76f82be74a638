"""Average scalar metrics over ranks before logging, so every rank's data counts."""

from __future__ import annotations

import torch
import torch.distributed as dist


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    if not values or not (dist.is_available() and dist.is_initialized()):
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist(), strict=True))

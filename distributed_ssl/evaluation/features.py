"""Embed a labeled set with every rank doing a share, gathered back in order on all ranks."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist

from distributed_ssl.losses.distributed_gather import world


@torch.no_grad()
def embed_all(embed: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch_size: int,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Features [N, D] of `inputs`, computed in batches split across ranks.

    Each rank runs the same number of forward passes (the last share is padded), which ZeRO-3 requires
    because every forward gathers parameters collectively.
    """
    rank, size = world()
    n = inputs.shape[0]
    per_rank = -(-n // size)
    padded = torch.cat([inputs, inputs[: per_rank * size - n]]) if per_rank * size > n else inputs
    mine = padded[rank * per_rank:(rank + 1) * per_rank]
    outs = [embed(mine[i:i + batch_size].to(device=device, dtype=dtype)).float().cpu()
            for i in range(0, per_rank, batch_size)]
    feats = torch.cat(outs) if outs else torch.zeros(0)
    if size > 1:
        parts = [torch.empty_like(feats) for _ in range(size)]
        dist.all_gather(parts, feats.contiguous())
        feats = torch.cat(parts)
    return feats[:n]

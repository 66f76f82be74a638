"""Which records to keep: prototype scoring, cluster-balanced sampling and the random baseline.

Every strategy returns sorted indices of exactly `num_keep` records, so runs on different strategies compare at
the same data fraction.
"""

from __future__ import annotations

from typing import Literal

import torch


def num_to_keep(total: int, keep: float) -> int:
    """round(keep × total), at least 1: the exact number of records a keep fraction means."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep={keep}: the kept fraction must lie in (0, 1]")
    return max(1, min(total, round(keep * total)))


def prototype_keep(distances: torch.Tensor, num_keep: int, prefer: Literal["hard", "easy"]) -> torch.Tensor:
    """Keep the records farthest from their centroid (hard: with abundant data) or closest (easy: scarce data).

    Sorscher et al. (2022): with plenty of data the hard, atypical examples teach most; with little data the
    typical ones do. Ties break by record order, so the selection is deterministic.
    """
    if prefer not in ("hard", "easy"):
        raise ValueError(f"prefer={prefer!r}: expected 'hard' or 'easy'")
    key = -distances if prefer == "hard" else distances
    return torch.sort(torch.sort(key, stable=True).indices[:num_keep]).values


def balanced_quotas(sizes: torch.Tensor, num_keep: int) -> torch.Tensor:
    """Per-cluster quotas summing to `num_keep`, as equal as the cluster sizes allow (water-filling).

    Small clusters are kept whole and their unused share goes to the larger ones, which flattens a heavy-tailed
    cluster-size distribution.
    """
    quotas = torch.zeros_like(sizes)
    open_ = sizes > 0
    left = num_keep
    while left > 0 and open_.any():
        share = max(left // int(open_.sum()), 1)
        room = sizes - quotas
        give = torch.where(open_, torch.clamp(room, max=share), torch.zeros_like(room))
        if int(give.sum()) > left:  # fewer records left than open clusters: one each to the smallest clusters
            order = torch.sort(torch.where(open_, room, room.max() + 1), stable=True).indices[:left]
            give = torch.zeros_like(give)
            give[order] = 1
        quotas += give
        left -= int(give.sum())
        open_ = quotas < sizes
    return quotas


def balanced_keep(assignments: torch.Tensor, num_keep: int, seed: int) -> torch.Tensor:
    """A random sample of each cluster's quota (see `balanced_quotas`)."""
    k = int(assignments.max()) + 1
    quotas = balanced_quotas(torch.bincount(assignments, minlength=k), num_keep)
    gen = torch.Generator().manual_seed(seed)
    kept = []
    for cluster in range(k):
        members = (assignments == cluster).nonzero().flatten()
        kept.append(members[torch.randperm(len(members), generator=gen)[:int(quotas[cluster])]])
    return torch.sort(torch.cat(kept)).values


def random_keep(total: int, num_keep: int, seed: int) -> torch.Tensor:
    """The baseline: a uniform random subset."""
    gen = torch.Generator().manual_seed(seed)
    return torch.sort(torch.randperm(total, generator=gen)[:num_keep]).values

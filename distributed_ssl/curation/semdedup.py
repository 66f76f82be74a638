"""SemDedup (Abbas et al., 2023): inside each k-means cluster, drop records nearly identical to another record.

Duplicates of one another land in the same cluster, so pairwise similarities are only computed within clusters
(chunked, so a cluster of tens of thousands never materialises its full similarity matrix).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def redundancy_scores(embeddings: torch.Tensor, assignments: torch.Tensor, distances: torch.Tensor,
                      chunk: int = 4096) -> torch.Tensor:
    """Per record, the highest cosine similarity to a record ranked before it in its cluster.

    Within a cluster, records are ranked by distance to the centroid, farthest first (the paper keeps the least
    prototypical member of a duplicate group); ties keep the original order, so of two exact copies the first
    one is kept. The first record of each cluster scores -1 (it has nobody to duplicate).
    """
    x = F.normalize(embeddings.float(), dim=1)
    scores = torch.full((x.shape[0],), -1.0)
    for cluster in torch.unique(assignments):
        members = (assignments == cluster).nonzero().flatten()
        if len(members) < 2:
            continue
        order = members[torch.sort(-distances[members], stable=True).indices]
        feats = x[order]
        best = torch.full((len(order),), -1.0)
        for start in range(0, len(order), chunk):
            rows = feats[start:start + chunk]
            sim = rows @ feats[:start + len(rows)].T  # only records ranked at or before each row matter
            ranks = torch.arange(start, start + len(rows)).unsqueeze(1)
            sim.masked_fill_(torch.arange(sim.shape[1]).unsqueeze(0) >= ranks, -1.0)
            best[start:start + len(rows)] = sim.max(dim=1).values
        scores[order] = best
    return scores


def semdedup_keep(redundancy: torch.Tensor, threshold: float | None, num_keep: int | None) -> torch.Tensor:
    """Indices kept: records whose redundancy is at most `threshold`, or the `num_keep` least redundant.

    With `num_keep` the threshold is implied (the paper's way of reaching a target data fraction).
    """
    if num_keep is not None:
        order = torch.sort(redundancy, stable=True).indices
        return torch.sort(order[:num_keep]).values
    if threshold is None:
        raise ValueError("semdedup needs a similarity threshold or a keep fraction")
    return (redundancy <= threshold).nonzero().flatten()

"""Weighted kNN classification on frozen features (Wu et al. 2018; the DINO protocol)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_top1(bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor, query_labels: torch.Tensor,
             num_classes: int, k: int = 20, temperature: float = 0.07, exclude_self: bool = False,
             chunk: int = 1024) -> float:
    """Top-1 accuracy: each query votes with its k most cosine-similar bank items weighted by exp(sim / T).

    With `exclude_self` (bank is query, leave-one-out), an item never votes for itself.
    """
    bank = F.normalize(bank.float(), dim=1)
    query = F.normalize(query.float(), dim=1)
    k = min(k, bank.shape[0] - (1 if exclude_self else 0))
    correct = 0
    for start in range(0, query.shape[0], chunk):
        q = query[start:start + chunk]
        sim = q @ bank.T
        if exclude_self:
            idx = torch.arange(start, start + q.shape[0])
            sim[torch.arange(q.shape[0]), idx] = float("-inf")
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(q.shape[0], num_classes)
        votes.scatter_add_(1, bank_labels[top_idx], weights)
        correct += int((votes.argmax(dim=1) == query_labels[start:start + chunk]).sum())
    return correct / max(query.shape[0], 1)

"""InfoNCE / NT-Xent (SimCLR) with negatives from every rank."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distributed_ssl.losses.distributed_gather import gather_with_grad, world


class InfoNCELoss(nn.Module):
    """For each of the 2·N·W embeddings, the other view of the same sample is the positive and the remaining
    2·N·W − 2 are negatives. Each rank computes the loss of its own rows; averaging the ranks' gradients gives
    exactly the gradient of the loss on the concatenated global batch."""

    def __init__(self, temperature: float = 0.2, gather_distributed: bool = True):
        super().__init__()
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        z0 = F.normalize(z0.float(), dim=1)
        z1 = F.normalize(z1.float(), dim=1)
        n = z0.shape[0]
        rank, _ = world() if self.gather_distributed else (0, 1)
        all0 = gather_with_grad(z0) if self.gather_distributed else z0
        all1 = gather_with_grad(z1) if self.gather_distributed else z1
        keys = torch.cat([all0, all1], dim=0)  # [2M, D], M = global batch
        m = all0.shape[0]
        own = torch.arange(n, device=z0.device) + rank * n  # global indices of our rows
        queries = torch.cat([z0, z1], dim=0)  # [2n, D]
        logits = queries @ keys.T / self.temperature  # [2n, 2M]
        self_index = torch.cat([own, own + m])
        logits[torch.arange(2 * n, device=z0.device), self_index] = float("-inf")
        positives = torch.cat([own + m, own])
        return F.cross_entropy(logits, positives)

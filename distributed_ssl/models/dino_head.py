"""DINO's projection head: an MLP to a bottleneck, then a weight-normalised layer of prototypes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distributed_ssl.models.transformer import init_weights


class DINOHead(nn.Module):
    """in → hidden → hidden → bottleneck (GELU MLP), L2-normalised, then cosine scores against `out_dim`
    prototypes.

    The last layer is DINO's weight-normed linear layer with its norm fixed to 1 (`norm_last_layer`), written
    as a row-normalised weight: one plain parameter that ZeRO-3 partitions like any other, and scores bounded
    in [-1, 1] that the temperatures then scale.
    """

    def __init__(self, in_dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
                                 nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim))
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        init_weights(self)
        nn.init.trunc_normal_(self.prototypes, std=0.02)
        self.prototypes_frozen = False  # set per step by DINO's `prototypes_frozen` schedule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1)
        # frozen: detached, so no gradient reaches the prototypes; the optimizer and DeepSpeed need no change
        prototypes = self.prototypes.detach() if self.prototypes_frozen else self.prototypes
        return F.linear(x, F.normalize(prototypes, dim=-1))

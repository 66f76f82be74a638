"""The module every export writes: model-ready inputs [B, ...] → embeddings [B, D], the encoder's `embed` path."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EmbeddingModel(nn.Module):
    """`forward(inputs)` = `encoder.embed(inputs)`, so exporters that trace `forward` see the embedding path."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed(inputs)


def cpu_embedding_model(encoder: nn.Module) -> EmbeddingModel:
    """A CPU fp32 copy in eval mode: exports must not move or change the caller's (maybe training) encoder."""
    return EmbeddingModel(copy.deepcopy(encoder).to("cpu", torch.float32)).eval()

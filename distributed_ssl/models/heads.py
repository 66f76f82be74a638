"""Heads that sit on an encoder: the SimCLR projection MLP and the MAE pixel decoder."""

from __future__ import annotations

import torch
from torch import nn

from distributed_ssl.models.transformer import MaskTokenTransformer, init_weights, scatter_visible


class ProjectionHead(nn.Module):
    """Linear → LayerNorm → GELU → Linear. LayerNorm, not BatchNorm, keeps each sample independent of its
    rank's batch, so multi-worker gradients equal single-worker ones."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, out_dim))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MAEDecoder(MaskTokenTransformer):
    """Light transformer decoder: visible latents + mask tokens at every patch position → per-patch predictions.

    `pos_embed` comes from the encoder (`encoder.decoder_position_embedding(dim)`): fixed grid embeddings for
    image and spectrogram patches, an MLP of the patch centres for point patches. That keeps this decoder, and
    MAE, free of any knowledge of the modality.
    """

    def forward(self, latent: torch.Tensor, mask: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """latent [B, 1 + N_visible, D_enc] (class token first), mask [B, N], the encoder's inputs (for positions)
        → [B, N, patch_dim]."""
        x = self.embed(latent)
        cls, visible = x[:, :1], x[:, 1:]
        full = scatter_visible(visible, mask, self.mask_token) + self.pos_embed(inputs).to(x.dtype)
        x = torch.cat([cls, full], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm(x))[:, 1:]

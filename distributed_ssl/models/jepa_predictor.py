"""The JEPA predictor: a narrow transformer that predicts the target encoder's features of hidden target blocks
from the context encoder's tokens and the targets' positions.

Like `MAEDecoder`, it takes its position embedding from the encoder (`encoder.decoder_position_embedding(dim)`):
fixed sin-cos grid embeddings for image and spectrogram patches, an MLP of the patch centres for point patches,
so the predictor, and JEPA, know nothing of the modality.
"""

from __future__ import annotations

import torch
from torch import nn

from distributed_ssl.models.transformer import MaskTokenTransformer, keep_visible


def block_size(target_masks: torch.Tensor) -> int:
    """Patches per target block; the data side makes it the same for every block of a batch."""
    counts = target_masks.sum(dim=-1)
    if counts.numel() == 0 or not bool((counts == counts.flatten()[0]).all()):
        raise ValueError("every target block of a batch must hold the same number of patches")
    return int(counts.flatten()[0])


class JEPAPredictor(MaskTokenTransformer):
    """context tokens [B, N_ctx, D_enc] + one mask token per target patch → predicted features [B, K, T, D_enc].

    Each of the K target blocks is predicted in its own sequence (context tokens, then the block's mask tokens),
    so blocks never see each other's queries (as in I-JEPA); the K sequences run as one batch of B·K.
    """

    def __init__(self, enc_dim: int, dim: int, depth: int, heads: int, pos_embed: nn.Module):
        super().__init__(enc_dim, dim, depth, heads, pos_embed, out_dim=enc_dim)

    def forward(self, context: torch.Tensor, context_mask: torch.Tensor, target_masks: torch.Tensor,
                inputs: torch.Tensor) -> torch.Tensor:
        """context: the encoder's patch tokens of the visible context (no class token); context_mask [B, N]
        (True = not in the context); target_masks [B, K, N]; inputs: the encoder's inputs (for positions)."""
        b, k, n = target_masks.shape
        t = block_size(target_masks)
        x = self.embed(context)
        pos = self.pos_embed(inputs).to(x.dtype).expand(b, n, -1)  # [B, N, dim]
        x = x + keep_visible(pos, context_mask)
        queries = pos.unsqueeze(1).expand(b, k, n, -1)[target_masks].view(b * k, t, -1) + self.mask_token.to(x.dtype)
        x = torch.cat([x.repeat_interleave(k, dim=0), queries], dim=1)  # [B·K, N_ctx + T, dim]
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm(x[:, -t:])).view(b, k, t, -1)

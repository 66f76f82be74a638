"""Transformer over point patches (Point-MAE): a mini-PointNet embeds each patch, an MLP of its centre positions it.

Input is the tokenizer's [B, G, 1 + K, C] tensor (row 0: patch centre; rows 1..K: neighbours relative to it).
Same surface as `ViTEncoder`: `forward(x, mask)` → [B, 1 + G_visible, D], `embed(x)` → [B, embed_dim], plus what MAE
asks of an encoder (`patchify`, `patch_dim`, `decoder_position_embedding`, `reconstruction_loss`).
"""

from __future__ import annotations

import torch
from torch import nn

from distributed_ssl.losses.chamfer_loss import MaskedChamferLoss
from distributed_ssl.models.transformer import Block, band_means, encode_tokens, init_weights


class MiniPointNet(nn.Module):
    """Shared per-point MLP → max-pool → concat the pooled feature back to every point → MLP → max-pool.

    LayerNorm instead of PointNet's BatchNorm keeps samples independent of their rank's batch.
    """

    def __init__(self, in_channels: int, dim: int, hidden: int = 128):
        super().__init__()
        self.first = nn.Sequential(nn.Linear(in_channels, hidden), nn.LayerNorm(hidden), nn.GELU(),
                                   nn.Linear(hidden, 2 * hidden))
        self.second = nn.Sequential(nn.Linear(4 * hidden, 2 * hidden), nn.LayerNorm(2 * hidden), nn.GELU(),
                                    nn.Linear(2 * hidden, dim))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """[B, G, K, C] → [B, G, dim]; invariant to the order of the K points."""
        f = self.first(points)
        pooled = f.max(dim=2, keepdim=True).values.expand_as(f)
        return self.second(torch.cat([pooled, f], dim=-1)).max(dim=2).values


class CentreEmbedding(nn.Module):
    """Position embedding of point patches: an MLP of the patch centres' xyz (row 0 of each group)."""

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.mlp(tokens[:, :, 0, :3])


class PointPatchEncoder(nn.Module):
    """`height_bands` > 0 keeps heights apart in `embed`: the patches are ranked by their centre's height, cut into
    that many equal bands (lowest first) and each band's tokens averaged, the means concatenated (embed_dim =
    height_bands · D). Gravity makes height the one axis with a meaning in every cloud (ground, trunk, crown), which
    one mean over all patches throws away."""

    def __init__(self, num_groups: int, group_size: int, point_channels: int, dim: int, depth: int, heads: int,
                 mlp_ratio: float = 4.0, hidden: int = 128, height_bands: int = 0):
        super().__init__()
        if height_bands < 0 or height_bands > num_groups:
            raise ValueError(f"height_bands={height_bands} must lie in [0, num_groups={num_groups}]")
        self.height_bands = height_bands
        self.num_patches = num_groups
        self.group_size = group_size
        self.dim = dim
        self.patch_embed = MiniPointNet(point_channels, dim, hidden)
        self.pos_embed = CentreEmbedding(dim, hidden)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        init_weights(self)
        nn.init.normal_(self.cls_token, std=0.02)

    @property
    def embed_dim(self) -> int:
        """Width of `embed`'s output, what projection heads and probes read."""
        return self.dim * max(1, self.height_bands)

    @property
    def patch_dim(self) -> int:
        return self.group_size * 3

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, G, 1 + K, C] → [B, G, K·3]: neighbour xyz relative to the centre (the MAE target)."""
        return x[:, :, 1:, :3].reshape(x.shape[0], x.shape[1], -1)

    def decoder_position_embedding(self, dim: int) -> nn.Module:
        return CentreEmbedding(dim)

    def reconstruction_loss(self, norm_targets: bool = True) -> nn.Module:
        """Chamfer-L2 on hidden patches; `norm_targets` (a pixel-MSE option) has no meaning for point sets."""
        return MaskedChamferLoss()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.patch_embed(x[:, :, 1:]) + self.pos_embed(x)
        return encode_tokens(tokens, mask, self.cls_token, self.blocks, self.norm)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the patch tokens, or one mean per height band (see the class); through __call__ so ZeRO-3
        gathers this module's parameters."""
        tokens = self(x)[:, 1:]
        if not self.height_bands:
            return tokens.mean(dim=1)
        groups = tokens.shape[1]
        if groups < self.height_bands:
            raise ValueError(f"{self.height_bands} height bands need at least as many point patches; this input has "
                             f"{groups} (a local view smaller than that?)")
        order = x[:, :, 0, 2].argsort(dim=1)  # patches by the height of their centre, lowest first
        ranked = torch.gather(tokens, 1, order.unsqueeze(-1).expand_as(tokens))
        return band_means(ranked, self.height_bands)

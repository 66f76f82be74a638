"""Vision Transformer over a 2-D patch grid: images, and (later) spectrograms, share this encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distributed_ssl.losses.masked_patch_mse_loss import MaskedPatchMSELoss
from distributed_ssl.models.transformer import (
    Block,
    GridPositionEmbedding,
    band_means,
    encode_tokens,
    init_weights,
    sincos_pos_embed_2d,
)


class ViTEncoder(nn.Module):
    """`forward(x, mask)` → normalised tokens [B, 1 + N_visible, D] (class token first); `embed(x)` → [B, embed_dim].

    `pool_rows` keeps the grid's rows apart in `embed`: each row's tokens are averaged along the row and the row
    means are concatenated (embed_dim = rows · D). A spectrogram's rows are frequency bands and its columns time:
    a word is told by where in frequency its energy sits, which one mean over the whole grid throws away.
    """

    def __init__(self, input_size: tuple[int, int], in_channels: int, patch_size: int, dim: int, depth: int,
                 heads: int, mlp_ratio: float = 4.0, pool_rows: bool = False):
        super().__init__()
        h, w = input_size
        if h % patch_size or w % patch_size:
            raise ValueError(f"input size {input_size} is not divisible by patch size {patch_size}")
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.grid = (h // patch_size, w // patch_size)
        self.num_patches = self.grid[0] * self.grid[1]
        self.dim = dim
        self.pool_rows = pool_rows
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", sincos_pos_embed_2d(dim, *self.grid).unsqueeze(0), persistent=False)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        init_weights(self)
        nn.init.normal_(self.cls_token, std=0.02)

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size * self.in_channels

    @property
    def embed_dim(self) -> int:
        """Width of `embed`'s output, what projection heads and probes read."""
        return self.dim * self.grid[0] if self.pool_rows else self.dim

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B, N, p·p·C] pixel patches in row-major grid order (the MAE target)."""
        b, c, _, _ = x.shape
        p, (gh, gw) = self.patch_size, self.grid
        x = x.reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, gh * gw, p * p * c)

    def decoder_position_embedding(self, dim: int) -> nn.Module:
        """Position embedding an MAE decoder of width `dim` adds at every patch: the same fixed grid."""
        return GridPositionEmbedding(dim, self.grid)

    def reconstruction_loss(self, norm_targets: bool = True) -> nn.Module:
        """MAE criterion for `patchify` targets: MSE on (per-patch normalised) pixels of hidden patches."""
        return MaskedPatchMSELoss(norm_targets)

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """[1, gh·gw, D] for a patch grid; a smaller input (a multi-crop local view) gets the full grid's
        embedding resized to its grid (as DINO does), so a local crop's patches keep their relative layout."""
        if grid == self.grid:
            return self.pos_embed
        full = self.pos_embed.reshape(1, *self.grid, self.dim).permute(0, 3, 1, 2)
        resized = F.interpolate(full, size=grid, mode="bicubic", align_corners=False)
        return resized.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], self.dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, H, W], H and W whole multiples of the patch size (any size up to the configured one)."""
        patches = self.patch_embed(x)
        grid = (patches.shape[2], patches.shape[3])
        if mask is not None and grid != self.grid:
            raise ValueError(f"a patch mask needs the full {self.grid} grid, got an input with grid {grid}")
        tokens = patches.flatten(2).transpose(1, 2) + self.position_embedding(grid).to(x.dtype)
        return encode_tokens(tokens, mask, self.cls_token, self.blocks, self.norm)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global representation: mean of the patch tokens (more robust than the class token for small models), or
        with `pool_rows` one mean per grid row, concatenated; a shorter input (a local view) keeps every row."""
        tokens = self(x)[:, 1:]  # through __call__, so ZeRO-3 gathers this module's own parameters
        if not self.pool_rows:
            return tokens.mean(dim=1)
        return band_means(tokens, x.shape[2] // self.patch_size)  # tokens are row-major: a row is one run

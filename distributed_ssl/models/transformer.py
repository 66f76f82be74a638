"""Pre-norm transformer blocks and fixed 2-D sine-cosine position embeddings, shared by encoders and decoders."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """[grid_h * grid_w, dim] fixed embeddings (as in MAE): half the channels encode rows, half columns."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs a width divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    ys, xs = torch.meshgrid(torch.arange(grid_h, dtype=torch.float64), torch.arange(grid_w, dtype=torch.float64),
                            indexing="ij")
    parts = []
    for coord in (ys.reshape(-1), xs.reshape(-1)):
        angles = coord[:, None] * omega[None, :]
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=1).float()


class GridPositionEmbedding(nn.Module):
    """Fixed sin-cos embeddings of a 2-D patch grid as a module: `forward(x)` → [1, N, dim], whatever x holds.

    The MAE decoder asks its encoder for a position embedding module; for grids it ignores the input, for point
    patches (`PointPatchEncoder`) it reads the patch centres from it.
    """

    def __init__(self, dim: int, grid: tuple[int, int]):
        super().__init__()
        self.register_buffer("table", sincos_pos_embed_2d(dim, *grid).unsqueeze(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table.to(x.dtype)


def init_weights(module: nn.Module) -> None:
    """Xavier-uniform linear layers and unit LayerNorms, as ViT/MAE reference code does."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def keep_visible(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Drop masked tokens: [B, N, D] with mask [B, N] (True = hidden) → [B, N_visible, D].

    Every row must hide the same number of tokens, which the data-side mask generator guarantees.
    """
    b, n, d = tokens.shape
    visible = ~mask
    counts = visible.sum(dim=1)
    if not bool((counts == counts[0]).all()):
        raise ValueError("every row of a mask must hide the same number of patches")
    return tokens[visible].view(b, int(counts[0]), d)


def scatter_visible(visible_tokens: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Inverse of `keep_visible`: place visible tokens back on the full grid, `fill` at hidden positions."""
    b, n = mask.shape
    full = fill.to(visible_tokens.dtype).expand(b, n, -1).clone()
    full[~mask] = visible_tokens.reshape(-1, visible_tokens.shape[-1])
    return full



def encode_tokens(tokens: torch.Tensor, mask: torch.Tensor | None, cls_token: torch.Tensor, blocks: nn.ModuleList,
                  norm: nn.Module) -> torch.Tensor:
    """The encoder trunk every token encoder shares: drop hidden tokens, prepend the class token, run the
    blocks, normalise. Returns [B, 1 + N_visible, D]."""
    if mask is not None:
        tokens = keep_visible(tokens, mask)
    tokens = torch.cat([cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
    for block in blocks:
        tokens = block(tokens)
    return norm(tokens)

class MaskTokenTransformer(nn.Module):
    """The narrow transformer behind the MAE decoder and the JEPA predictor: encoder tokens are projected to
    `dim`, a learned mask token stands in for every hidden patch, positions come from the encoder
    (`encoder.decoder_position_embedding(dim)`), and `out` maps back to the prediction's width."""

    def __init__(self, enc_dim: int, dim: int, depth: int, heads: int, pos_embed: nn.Module, out_dim: int):
        super().__init__()
        self.embed = nn.Linear(enc_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = pos_embed
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, out_dim)
        init_weights(self)
        nn.init.normal_(self.mask_token, std=0.02)


def band_means(tokens: torch.Tensor, bands: int) -> torch.Tensor:
    """[B, N, D] tokens in band order → [B, bands · D]: the tokens cut into `bands` consecutive runs (as equal as N
    allows), each run's mean, concatenated. The pooling of both encoders' band readouts (`embed`)."""
    return torch.cat([band.mean(dim=1) for band in tokens.tensor_split(bands, dim=1)], dim=1)


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["Attention", "Block", "GridPositionEmbedding", "init_weights", "keep_visible", "num_params", "scatter_visible",
           "sincos_pos_embed_2d"]

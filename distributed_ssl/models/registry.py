"""Encoder registry: named flavours with one surface, including tiny ones so every path runs on a CPU."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from distributed_ssl.models.vit_encoder import ViTEncoder

# width, depth, heads
VIT_FLAVOURS: dict[str, tuple[int, int, int]] = {
    "vit_debug": (32, 1, 2),
    "vit_tiny": (128, 4, 4),
    "vit_small": (384, 12, 6),
    "vit_base": (768, 12, 12),
}


def _vit(flavour: str) -> Callable[..., nn.Module]:
    def build(input_size: tuple[int, int], in_channels: int, patch_size: int, dim: int | None = None,
              depth: int | None = None, heads: int | None = None, **_: Any) -> nn.Module:
        d, n, h = VIT_FLAVOURS[flavour]
        return ViTEncoder(input_size, in_channels, patch_size, dim or d, depth or n, heads or h)

    return build


_REGISTRY: dict[str, Callable[..., nn.Module]] = {name: _vit(name) for name in VIT_FLAVOURS}


def encoder_names() -> list[str]:
    return sorted(_REGISTRY)


def build_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered encoder; unknown names fail with the list of known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown encoder {name!r} (model.encoder); known: {', '.join(encoder_names())}")
    return _REGISTRY[name](**kwargs)

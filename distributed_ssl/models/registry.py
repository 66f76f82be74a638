"""Encoder registry: named flavours with one surface, including tiny ones so every path runs on a CPU."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from distributed_ssl.models.point_patch_encoder import PointPatchEncoder
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
              depth: int | None = None, heads: int | None = None, pool_rows: bool = False, **_: Any) -> nn.Module:
        d, n, h = VIT_FLAVOURS[flavour]
        return ViTEncoder(input_size, in_channels, patch_size, dim or d, depth or n, heads or h, pool_rows=pool_rows)

    return build


# width, depth, heads, mini-PointNet hidden width; for point patches (the lidar modality)
POINT_FLAVOURS: dict[str, tuple[int, int, int, int]] = {
    "point_debug": (32, 1, 2, 32),
    "point_tiny": (128, 4, 4, 64),
    "point_small": (384, 12, 6, 128),
}


def _point(flavour: str) -> Callable[..., nn.Module]:
    def build(num_groups: int, group_size: int, point_channels: int, dim: int | None = None,
              depth: int | None = None, heads: int | None = None, height_bands: int = 0, **_: Any) -> nn.Module:
        d, n, h, hidden = POINT_FLAVOURS[flavour]
        return PointPatchEncoder(num_groups, group_size, point_channels, dim or d, depth or n, heads or h,
                                 hidden=hidden, height_bands=height_bands)

    return build


_REGISTRY: dict[str, Callable[..., nn.Module]] = {name: _vit(name) for name in VIT_FLAVOURS}
_REGISTRY.update({name: _point(name) for name in POINT_FLAVOURS})


def encoder_names() -> list[str]:
    return sorted(_REGISTRY)


def build_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered encoder; unknown names fail with the list of known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown encoder {name!r} (model.encoder); known: {', '.join(encoder_names())}")
    builder = _REGISTRY[name]
    needed = [p.name for p in inspect.signature(builder).parameters.values()
              if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
    missing = [p for p in needed if p not in kwargs]
    if missing:  # e.g. a ViT asked to read point patches: say which encoders fit instead of a TypeError
        family = "point_*" if name in VIT_FLAVOURS else "vit_*"
        raise ValueError(f"encoder {name!r} (model.encoder) needs {', '.join(missing)}, which this modality does "
                         f"not provide; pick a {family} encoder for it")
    return builder(**kwargs)

"""What a method asks of the data side: how many views, how strongly augmented, and whether masked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ViewSpec:
    """`num_views` global views (`view_0..`) and, for multi-crop methods such as DINO, `num_local_views` local
    views (`local_0..`).

    A local view covers a small part of the sample and is smaller than a global view by `local_size` (image
    side, clip length, number of points and point patches), so it costs less to encode. `local_scale` is the
    range of the fraction of the image area, or of the cloud's nearest points around a random seed point, that
    a local view is cut from; an audio local view is a random segment `local_size` of the clip long.
    """

    num_views: int = 2
    augment: Literal["strong", "light", "none"] = "strong"
    mask: bool = False
    # random: `mask` hides mask.ratio of the patches (MAE); multiblock: `mask` hides all but a context block and
    # `target_masks` [B, K, N] marks K target blocks (JEPA, see multiblock_masking.py)
    mask_kind: Literal["random", "multiblock"] = "random"
    num_local_views: int = 0
    local_scale: tuple[float, float] = (0.05, 0.4)
    local_size: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = self.local_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"local_scale {self.local_scale} must satisfy 0 < min <= max <= 1")
        if not 0 < self.local_size <= 1:
            raise ValueError(f"local_size {self.local_size} must lie in (0, 1]")
        if self.num_local_views < 0:
            raise ValueError(f"num_local_views {self.num_local_views} must be >= 0")

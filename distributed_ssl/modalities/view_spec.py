"""What a method asks of the data side: how many views, how strongly augmented, and whether masked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ViewSpec:
    num_views: int = 2
    augment: Literal["strong", "light", "none"] = "strong"
    mask: bool = False

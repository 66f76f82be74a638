"""Name → modality object. Each modality exposes the same surface so the pipeline and engine stay generic."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.modalities.view_spec import ViewSpec


class Modality(Protocol):
    name: str
    record_columns: list[str]

    def decode(self, batch: dict[str, np.ndarray], cfg: SSLConfig) -> torch.Tensor: ...

    def make_views(self, raw: torch.Tensor, spec: ViewSpec, cfg: SSLConfig,
                   gen: torch.Generator) -> dict[str, np.ndarray]: ...

    def eval_inputs(self, raw: torch.Tensor, cfg: SSLConfig) -> torch.Tensor: ...

    def num_patches(self, cfg: SSLConfig) -> int: ...

    def encoder_kwargs(self, cfg: SSLConfig) -> dict[str, Any]: ...

    def preview(self, batch: dict[str, np.ndarray], cfg: SSLConfig, path: str) -> None: ...


def get_modality(name: str) -> Modality:
    if name == "image":
        from distributed_ssl.modalities.image import ImageModality

        return ImageModality()
    if name == "audio":
        from distributed_ssl.modalities.audio import AudioModality

        return AudioModality()
    if name == "lidar":
        from distributed_ssl.modalities.lidar import LidarModality

        return LidarModality()
    raise ValueError(f"unknown modality {name!r}; known: image, audio, lidar")

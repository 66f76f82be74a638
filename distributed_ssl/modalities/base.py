"""The surface every modality exposes, so the pipeline and engine stay generic, and its registration.

A modality registers itself with `@register_modality(name)` in its own module; its config class is
`MODALITY_CONFIGS[name]` (config/modality_configs.py), which also names the class of its `augment` section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from distributed_ssl.config.modality_configs import MODALITY_CONFIGS
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


_MODALITIES: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_modality(name: str) -> Callable[[T], T]:
    """`@register_modality("audio")` on a modality class makes it `modality.name=audio`."""

    def register(cls: T) -> T:
        if name not in MODALITY_CONFIGS:
            raise TypeError(f"modality {name!r} has no config class: add one to config/modality_configs.py")
        if name in _MODALITIES and _MODALITIES[name] is not cls:
            raise TypeError(f"modality {name!r} is registered twice ({_MODALITIES[name].__name__}, {cls.__name__})")
        cls.name = name
        _MODALITIES[name] = cls
        return cls

    return register


def registered_modalities() -> dict[str, type]:
    return dict(_MODALITIES)

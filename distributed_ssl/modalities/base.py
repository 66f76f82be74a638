"""The surface every modality exposes, so the pipeline and engine stay generic, and its registration.

A modality registers its class with `@register_modality(name)` in its own module; its config class is
`MODALITY_CONFIGS[name]` (config/modality_configs.py), which also names the class of its `augment` section. An
instance is built once from the config sections it reads (`build_modality`, modalities/registry.py) and then
needs no `SSLConfig`: it is what the Ray Data step, evaluation and export hold.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from distributed_ssl.config.modality_configs import MODALITY_CONFIGS
from distributed_ssl.modalities.view_spec import ViewSpec

# The constructor arguments a modality may take, each one section (or key) of the config; `build_modality` is the
# one place that picks them out of an `SSLConfig`.
MODALITY_PIECES = ("config", "augment", "mask", "patch_size")


class Modality(Protocol):
    name: str
    record_columns: list[str]

    def decode(self, batch: dict[str, np.ndarray]) -> torch.Tensor: ...

    def make_views(self, raw: torch.Tensor, spec: ViewSpec, gen: torch.Generator) -> dict[str, np.ndarray]: ...

    def eval_inputs(self, raw: torch.Tensor) -> torch.Tensor: ...

    def num_patches(self) -> int: ...

    def encoder_kwargs(self) -> dict[str, Any]: ...

    def preview(self, batch: dict[str, np.ndarray], path: str) -> None: ...


_MODALITIES: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_modality(name: str) -> Callable[[T], T]:
    """`@register_modality("audio")` on a modality class makes it `modality.name=audio`."""

    def register(cls: T) -> T:
        if name not in MODALITY_CONFIGS:
            raise TypeError(f"modality {name!r} has no config class: add one to config/modality_configs.py")
        unknown = set(inspect.signature(cls).parameters) - set(MODALITY_PIECES)
        if unknown:  # build_modality could not fill them
            raise TypeError(f"modality {name!r} takes {sorted(unknown)}; a modality is built from "
                            f"{', '.join(MODALITY_PIECES)}")
        if name in _MODALITIES and _MODALITIES[name] is not cls:
            raise TypeError(f"modality {name!r} is registered twice ({_MODALITIES[name].__name__}, {cls.__name__})")
        cls.name = name
        _MODALITIES[name] = cls
        return cls

    return register


def registered_modalities() -> dict[str, type]:
    return dict(_MODALITIES)

"""The interface every SSL method implements, so the engine never needs to know which one it runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from distributed_ssl.config.method_configs import (
    METHOD_CONFIGS,
    MethodKeys,
    MultiblockMaskConfig,
    NoMaskConfig,
    RandomMaskConfig,
)
from distributed_ssl.modalities.view_spec import ViewSpec

_METHODS: dict[str, type[Method]] = {}
M = TypeVar("M", bound="type[Method]")
# The mask a method's ViewSpec asks for and the class of its `mask` section agree (config/method_configs.py).
_MASK_SECTION = {None: NoMaskConfig, "random": RandomMaskConfig, "multiblock": MultiblockMaskConfig}


def register_method(name: str) -> Callable[[M], M]:
    """`@register_method("dino")` on a Method subclass makes it `method.name=dino`; its config class is
    `METHOD_CONFIGS[name]` (config/method_configs.py) and it declares its data-side views in `views`."""

    def register(cls: M) -> M:
        if name not in METHOD_CONFIGS:
            raise TypeError(f"method {name!r} has no config class: add one to config/method_configs.py")
        if name in _METHODS and _METHODS[name] is not cls:
            raise TypeError(f"method {name!r} is registered twice ({_METHODS[name].__name__}, {cls.__name__})")
        mask = cls.views.mask_kind if cls.views.mask else None
        if _MASK_SECTION[mask] is not METHOD_CONFIGS[name].mask_config:
            raise TypeError(f"method {name!r} asks for mask {mask} but its config takes "
                            f"{METHOD_CONFIGS[name].mask_config.__name__}")
        cls.method_name = name
        _METHODS[name] = cls
        return cls

    return register


def registered_methods() -> dict[str, type[Method]]:
    return dict(_METHODS)


class Method(nn.Module):
    """`forward(batch) -> {"loss": ..., other scalars}`; `embed(x)` gives the representation that probes read.

    A registered method (`register_method`) is built by `from_config(encoder, cfg)` from its own config class and
    says what it asks of the data side in `views` (or `view_spec(cfg)` when that depends on the config)."""

    encoder: nn.Module
    method_name: ClassVar[str]
    views: ClassVar[ViewSpec] = ViewSpec()

    @classmethod
    def from_config(cls, encoder: nn.Module, cfg: Any) -> Method:
        raise NotImplementedError

    @classmethod
    def view_spec(cls, cfg: MethodKeys) -> ViewSpec:
        """The views and masks this method needs from the data side."""
        return cls.views

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation of the delivered encoder (`delivered_encoder`)."""
        return self.encoder.embed(x)

    def delivered_encoder(self) -> nn.Module:
        """The encoder whose weights the run delivers (probes, encoder.pt, export): the trained one by default."""
        return self.encoder

    def trainable_module(self) -> nn.Module:
        """What the optimizer and DeepSpeed wrap (a method with an EMA target excludes the target)."""
        return self

    # per-step schedules this method reads besides the learning rate (built in engine/schedules.py)
    schedules: tuple[str, ...] = ()

    def apply_schedule(self, name: str, value: float) -> None:
        """The value of schedule `name` (one of `schedules`) for the optimizer step about to be computed."""
        raise KeyError(f"{type(self).__name__} has no schedule {name!r}")

    def on_step_end(self, step: int) -> None:
        """Hook after each optimizer step (EMA updates); `step` counts finished optimizer steps from 1."""

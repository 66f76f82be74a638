"""The interface every SSL method implements, so the engine never needs to know which one it runs."""

from __future__ import annotations

import torch
from torch import nn


class Method(nn.Module):
    """`forward(batch) -> {"loss": ..., other scalars}`; `embed(x)` gives the representation that probes read."""

    encoder: nn.Module

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed(x)

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

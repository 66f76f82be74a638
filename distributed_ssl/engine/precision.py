"""What each `deepspeed.precision` means for a step: the dtype inputs and weights are held in, and the autocast.

- `fp32`: everything in float32 (the default; on CPUs without bf16 matrix units it is also the fastest).
- `bf16`: DeepSpeed's bf16 mode, a whole-model cast: weights, activations and inputs in bfloat16 (half the
  memory; the optimizer keeps fp32 master weights under ZeRO).
- `bf16-mixed`: weights and optimizer state stay float32 and the forward runs under `torch.autocast(bfloat16)`,
  so matmuls and convolutions run in bf16 and reductions, norms and the loss in fp32 (the usual mixed precision
  of GPU training; the backward follows the forward's dtypes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

PRECISIONS = ("fp32", "bf16", "bf16-mixed")
R = TypeVar("R")


@dataclass(frozen=True)
class Precision:
    name: str
    dtype: torch.dtype  # of the weights DeepSpeed holds and of the inputs handed to the model
    autocast: bool

    @property
    def deepspeed_bf16(self) -> bool:
        """Whether DeepSpeed's own bf16 mode (the whole-model cast) is on."""
        return self.name == "bf16"

    def forward_context(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Where the forward (training step or probe embedding) runs."""
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def wrap(self, fn: Callable[..., R], device: torch.device) -> Callable[..., R]:
        """`fn` run in `forward_context`, e.g. the encoder's embed for the probes (whose own maths stays fp32)."""
        if not self.autocast:
            return fn

        def in_precision(*args: object, **kwargs: object) -> R:
            with self.forward_context(device):
                return fn(*args, **kwargs)

        return in_precision


def precision_for(name: str) -> Precision:
    if name not in PRECISIONS:
        raise ValueError(f"deepspeed.precision={name!r}: expected one of {', '.join(PRECISIONS)}")
    return Precision(name, torch.bfloat16 if name == "bf16" else torch.float32, autocast=name == "bf16-mixed")

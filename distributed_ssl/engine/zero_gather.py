"""Full parameter values under ZeRO-3, for the code that reads them outside a forward pass.

ZeRO-3 partitions every parameter across ranks; an EMA teacher's update and the final encoder export need the
whole tensors. This is the one place that knows it: methods stay free of DeepSpeed, and the Trainer hands
`gathered` to each EMA teacher (`install_gather`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from torch import nn

from distributed_ssl.methods.ema_teacher import ema_teachers


def gathered(params: Iterable[nn.Parameter]) -> contextlib.AbstractContextManager:
    """Full values of ZeRO-3-partitioned parameters on every rank (read-only); a no-op for ZeRO 0-2 and plain
    modules. Every rank must enter it (it is a collective)."""
    partitioned = [p for p in params if hasattr(p, "ds_id")]
    if not partitioned:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(partitioned, modifier_rank=None)


def install_gather(method: nn.Module) -> None:
    """Let every EMA teacher of `method` read its student's full weights under ZeRO-3."""
    for teacher in ema_teachers(method):
        teacher.gather = gathered


def full_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s state as full fp32 CPU tensors (gathering ZeRO-3 shards; every rank must call it)."""
    with gathered(module.parameters()):
        return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()}

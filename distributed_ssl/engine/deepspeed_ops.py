"""Which of DeepSpeed's compiled ops a training run loads, and the one place an engine is made.

On the CPU, DeepSpeed's communication backend JIT-compiles `deepspeed_shm_comm` (a shared-memory all-reduce)
when it starts: about 90 s with a C++ compiler the first time, and again whenever its build command comes out
different (a test machine's cache held 11 builds of it from four distinct command lines).
That op serves only `inference_all_reduce` (tensor-parallel inference); training's collectives go through
torch.distributed (gloo on the CPU, NCCL on GPUs), so the op is marked unavailable before DeepSpeed starts.
Every engine is made through `initialize_engine`, so no caller can forget that step.
"""

from __future__ import annotations

from typing import Any

import torch

INFERENCE_ONLY_OPS = ("deepspeed_shm_comm",)


def skip_inference_only_ops() -> None:
    """Mark the inference-only ops as not compatible, so `deepspeed.initialize` neither builds nor loads them."""
    import deepspeed.ops

    compatible = deepspeed.ops.__compatible_ops__  # probed once per process; edits persist
    for name in INFERENCE_ONLY_OPS:
        if name in compatible:
            compatible[name] = False


def initialize_engine(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      config: dict[str, Any]) -> tuple[Any, Any]:
    """`deepspeed.initialize` without the inference-only ops: the engine and its (possibly wrapped) optimizer."""
    import deepspeed

    skip_inference_only_ops()
    engine, wrapped_optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    return engine, wrapped_optimizer

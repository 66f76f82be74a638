"""Which of DeepSpeed's compiled ops a training run loads, and the one place an engine is made.

On the CPU, DeepSpeed's communication backend JIT-compiles `deepspeed_shm_comm` (a shared-memory all-reduce)
when it starts: about 90 s with a C++ compiler the first time, and again whenever its build command comes out
different (a test machine's cache held 11 builds of it from four distinct command lines).
That op serves only `inference_all_reduce` (tensor-parallel inference); training's collectives go through
torch.distributed (gloo on the CPU, NCCL on GPUs), so the op is marked unavailable before DeepSpeed starts.

ZeRO's first gradient reduction imports DeepSpeed's Muon modules to ask whether the optimizer is Muon; one of
them decorates its functions with `torch.compile` when imported, which imports inductor: about 2 s of CPU in
every worker of every run. A torch optimizer is never DeepSpeed's Muon, so for one the modules are stand-ins
whose class nothing is an instance of.

Every engine is made through `initialize_engine`, so no caller can forget either step.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import torch

INFERENCE_ONLY_OPS = ("deepspeed_shm_comm",)
MUON_OPTIMIZER_MODULE = "deepspeed.runtime.zero.muon.muon_optimizer"
MUON_UPDATE_MODULE = "deepspeed.runtime.zero.muon.original_muon"


def skip_inference_only_ops() -> None:
    """Mark the inference-only ops as not compatible, so `deepspeed.initialize` neither builds nor loads them."""
    import deepspeed.ops

    compatible = deepspeed.ops.__compatible_ops__  # probed once per process; edits persist
    for name in INFERENCE_ONLY_OPS:
        if name in compatible:
            compatible[name] = False


def answer_muon_checks_without_importing_muon(optimizer: torch.optim.Optimizer) -> None:
    """For a torch optimizer, put stand-ins for DeepSpeed's Muon modules in `sys.modules` (unless the real ones are
    loaded): ZeRO imports `MuonWithAuxAdam` from one for an isinstance check and `muon_update` from the other, which it
    calls only for parameter groups of a Muon optimizer."""
    if MUON_OPTIMIZER_MODULE in sys.modules or not type(optimizer).__module__.startswith("torch.optim"):
        return

    def muon_update(*_: Any, **__: Any) -> None:
        raise RuntimeError("DeepSpeed's Muon update was called for a torch optimizer; dssl never builds Muon")

    optimizer_module = types.ModuleType(MUON_OPTIMIZER_MODULE, "Stand-in: the engine's optimizer is never Muon.")
    optimizer_module.MuonWithAuxAdam = type("MuonWithAuxAdam", (), {})  # type: ignore[attr-defined]
    update_module = types.ModuleType(MUON_UPDATE_MODULE, "Stand-in: the engine's optimizer is never Muon.")
    update_module.muon_update = muon_update  # type: ignore[attr-defined]
    sys.modules.setdefault(MUON_UPDATE_MODULE, update_module)
    sys.modules[MUON_OPTIMIZER_MODULE] = optimizer_module


def initialize_engine(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      config: dict[str, Any]) -> tuple[Any, Any]:
    """`deepspeed.initialize` without the inference-only ops or the Muon import: the engine and its (possibly
    wrapped) optimizer."""
    import deepspeed

    skip_inference_only_ops()
    answer_muon_checks_without_importing_muon(optimizer)
    engine, wrapped_optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    return engine, wrapped_optimizer

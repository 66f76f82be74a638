"""Translate our config into a DeepSpeed config dict (the one place distributed wrapping is decided)."""

from __future__ import annotations

from typing import Any

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.engine.precision import precision_for


def build_deepspeed_config(cfg: SSLConfig, world_size: int) -> dict[str, Any]:
    ds = cfg.deepspeed
    zero: dict[str, Any] = {"stage": ds.zero_stage}
    if ds.zero_stage >= 1 and ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
    if ds.zero_stage == 3:
        if ds.offload_params:
            zero["offload_param"] = {"device": "cpu", "pin_memory": False}
        # Small models: gather every parameter eagerly instead of thresholding per layer.
        zero["stage3_param_persistence_threshold"] = 0
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": cfg.train.batch_size,
        "gradient_accumulation_steps": cfg.train.grad_accum,
        "train_batch_size": cfg.train.batch_size * cfg.train.grad_accum * world_size,
        "zero_optimization": zero,
        "bf16": {"enabled": precision_for(ds.precision).deepspeed_bf16},
        "steps_per_print": 10**9,  # our own logging reports progress
        "wall_clock_breakdown": False,
        # The optimizer is our torch AdamW; allow it beside ZeRO-Offload too.
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
    }
    if cfg.optim.grad_clip > 0:
        config["gradient_clipping"] = cfg.optim.grad_clip
    return config

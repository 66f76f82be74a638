"""Every per-step schedule of a run, built once as arrays (DINOv2 style) and indexed by the Trainer's step.

`lr` is the optimizer's (linear warm-up, cosine decay), `weight_decay` its decay when `optim.weight_decay_final` is
set (a cosine ramp, applied to the groups that decay); a method asks for more by name in `Method.schedules`:
`ema_momentum` (the EMA teacher's momentum, a cosine rise, BYOL/DINO/JEPA), `teacher_temp` (DINO's teacher
temperature, a linear warm-up then constant) and `prototypes_frozen` (DINO: 1 while its prototypes are frozen, then
0). The Trainer sets the value of step `global_step` (0-based: the step being computed) before each micro-batch,
through `Method.apply_schedule`; there is no other step counter, so a resumed run continues every schedule at its
restored `global_step`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.util.schedules import cosine_ramp, momentum_schedule, warmup_constant, warmup_cosine

LR = "lr"
WEIGHT_DECAY = "weight_decay"


def teacher_temp_schedule(total_steps: int, start: float, final: float, warmup_steps: int) -> np.ndarray:
    """Linear warm-up from `start` to `final` over `warmup_steps`, then constant (DINO's teacher temperature)."""
    return warmup_constant(total_steps, start, final, warmup_steps)


def _method_schedule(name: str, m: Any, total_steps: int) -> np.ndarray:
    """One of a method's schedules, from its section of the config (`cfg.method`)."""
    if name == "ema_momentum":
        return momentum_schedule(total_steps, m.momentum_base, m.momentum_final)
    if name == "teacher_temp":
        return teacher_temp_schedule(total_steps, m.teacher_temp_start, m.teacher_temp,
                                     int(m.teacher_temp_warmup_fraction * total_steps))
    if name == "prototypes_frozen":
        frozen = np.zeros(total_steps)
        frozen[:int(m.freeze_prototypes_fraction * total_steps)] = 1.0
        return frozen
    raise ValueError(f"unknown schedule {name!r} (known: ema_momentum, teacher_temp, prototypes_frozen)")


def build_schedules(cfg: SSLConfig, names: tuple[str, ...], total_steps: int) -> dict[str, np.ndarray]:
    """`lr` and each schedule in `names` (a method's `schedules`), one value per optimizer step."""
    o = cfg.optim
    arrays = {LR: warmup_cosine(total_steps, o.lr, o.min_lr, int(o.warmup_fraction * total_steps))}
    if o.weight_decay_final is not None:
        arrays[WEIGHT_DECAY] = cosine_ramp(total_steps, o.weight_decay, o.weight_decay_final)
    for name in names:
        arrays[name] = _method_schedule(name, cfg.method, total_steps)
    return arrays


def values_at(schedules: dict[str, np.ndarray], step: int) -> dict[str, float]:
    """Every schedule's value at optimizer step `step` (0-based; the last value past the end)."""
    return {name: float(values[min(max(step, 0), len(values) - 1)]) for name, values in schedules.items()}


def set_weight_decay(optimizer: torch.optim.Optimizer, value: float) -> None:
    """`value` on the groups that decay (param_groups' `decays`), 0 on biases, norms and tokens."""
    for group in optimizer.param_groups:
        group["weight_decay"] = value if group["decays"] else 0.0


def apply_values(values: dict[str, float], optimizer: torch.optim.Optimizer, method: Any) -> None:
    """One optimizer step's values (`values_at`): lr to every group, weight decay to the groups that decay, the
    rest to the method (`apply_schedule`). The Trainer and benchmarks/recipe_levers.py's loop both step this way."""
    for name, value in values.items():
        if name == LR:
            for group in optimizer.param_groups:
                group["lr"] = value
        elif name == WEIGHT_DECAY:
            set_weight_decay(optimizer, value)
        else:
            method.apply_schedule(name, value)

"""Per-step schedules precomputed as arrays (DINOv2 style): index by the optimizer step, nothing stateful."""

from __future__ import annotations

import numpy as np


def warmup_cosine(total_steps: int, base: float, final: float, warmup_steps: int = 0,
                  warmup_start: float = 0.0) -> np.ndarray:
    """Linear warmup from `warmup_start` to `base`, then cosine decay to `final`; length `total_steps`."""
    total_steps = max(int(total_steps), 1)
    warmup_steps = min(max(int(warmup_steps), 0), total_steps)
    warmup = np.linspace(warmup_start, base, warmup_steps, endpoint=False)
    decay_steps = total_steps - warmup_steps
    t = np.arange(decay_steps) / max(decay_steps - 1, 1)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * t))
    return np.concatenate([warmup, cosine]).astype(np.float64)


def momentum_schedule(total_steps: int, base: float, final: float = 1.0) -> np.ndarray:
    """EMA-teacher momentum per optimizer step: cosine increase from `base` to `final` (BYOL / DINO).

    A rising momentum lets the teacher follow the student quickly early on and freeze into a stable
    target late in training.
    """
    if not 0.0 <= base <= 1.0 or not 0.0 <= final <= 1.0:
        raise ValueError(f"momentum base {base} and final {final} must lie in [0, 1]")
    return cosine_ramp(total_steps, base, final)


def cosine_ramp(total_steps: int, start: float, final: float) -> np.ndarray:
    """Per optimizer step, half a cosine from `start` (first step) to `final` (last step)."""
    total_steps = max(int(total_steps), 1)
    t = np.arange(total_steps) / max(total_steps - 1, 1)
    return (final - 0.5 * (final - start) * (1 + np.cos(np.pi * t))).astype(np.float64)


def warmup_constant(total_steps: int, start: float, final: float, warmup_steps: int) -> np.ndarray:
    """Linear warm-up from `start` to `final` over `warmup_steps`, then constant at `final`."""
    total_steps = max(int(total_steps), 1)
    warmup_steps = min(max(int(warmup_steps), 0), total_steps)
    return np.concatenate([np.linspace(start, final, warmup_steps, endpoint=False),
                           np.full(total_steps - warmup_steps, final)]).astype(np.float64)

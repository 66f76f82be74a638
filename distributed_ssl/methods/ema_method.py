"""Base of methods that distil from an EMA teacher (BYOL, DINO): momentum schedule and the per-step update."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from distributed_ssl.methods.base import Method
from distributed_ssl.methods.ema_teacher import EMATeacher
from distributed_ssl.util.schedules import momentum_schedule


class EMATeacherMethod(Method):
    """Subclasses set `self.teacher = EMATeacher(self.student_network())` and implement `student_network()`.

    After every optimizer step the teacher moves towards the student with the momentum of that step (a cosine
    rise from `momentum_base` to `momentum_final` over the run). `steps_done` is a buffer, so it is saved with
    the checkpoint and step-indexed schedules continue where a resumed run left off.
    """

    teacher: EMATeacher

    def __init__(self, momentum_base: float, momentum_final: float = 1.0):
        super().__init__()
        self.momentum_base = momentum_base
        self.momentum_final = momentum_final
        self.momentum: np.ndarray = np.array([momentum_base])
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def student_network(self) -> nn.Module:
        """The student modules that the teacher mirrors, with the teacher's parameter names."""
        raise NotImplementedError

    def set_total_steps(self, total_steps: int) -> None:
        self.momentum = momentum_schedule(total_steps, self.momentum_base, self.momentum_final)

    def momentum_at(self, step: int) -> float:
        """Momentum of the update that follows optimizer step `step` (counted from 1)."""
        return float(self.momentum[min(max(step - 1, 0), len(self.momentum) - 1)])

    def on_step_end(self, step: int) -> None:
        self.teacher.update(self.student_network(), self.momentum_at(step))
        self.steps_done.fill_(step)

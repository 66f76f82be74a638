"""Base of methods that distil from an EMA teacher (BYOL, DINO): momentum schedule and the per-step update."""

from __future__ import annotations

from typing import Any

from torch import nn

from distributed_ssl.methods.base import Method
from distributed_ssl.methods.ema_teacher import EMATeacher


class EMATeacherMethod(Method):
    """Subclasses set `self.teacher = EMATeacher(self.student_network())` and implement `student_network()`.

    After every optimizer step the teacher moves towards the student with the momentum of that step: the
    engine's `ema_momentum` schedule (a cosine rise from `momentum_base` to `momentum_final` over the run), set
    through `apply_schedule` before the step; `momentum_base` until then.
    """

    teacher: EMATeacher
    schedules = ("ema_momentum",)

    def __init__(self, momentum_base: float, momentum_final: float = 1.0):
        super().__init__()
        self.momentum_base = momentum_base
        self.momentum_final = momentum_final
        self.momentum = float(momentum_base)

    def student_network(self) -> nn.Module:
        """The student modules that the teacher mirrors, with the teacher's parameter names."""
        raise NotImplementedError

    def apply_schedule(self, name: str, value: float) -> None:
        if name != "ema_momentum":
            super().apply_schedule(name, value)
        self.momentum = float(value)

    def on_step_end(self, step: int) -> None:
        self.teacher.update(self.student_network(), self.momentum)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Checkpoints of earlier versions hold the method's own step counter; the Trainer's global_step replaced it.
        state_dict.pop(prefix + "steps_done", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

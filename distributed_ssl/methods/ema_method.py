"""Base of methods that distil from an EMA teacher (BYOL, DINO, JEPA): the momentum schedule, the per-step update
and which of student and teacher the run delivers."""

from __future__ import annotations

from typing import Any, Literal

import torch
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

    def __init__(self, momentum_base: float, momentum_final: float = 1.0,
                 output_encoder: Literal["student", "teacher"] = "student"):
        super().__init__()
        if output_encoder not in ("student", "teacher"):
            raise ValueError(f"method.output_encoder must be student or teacher, got {output_encoder!r}")
        self.momentum_base = momentum_base
        self.momentum_final = momentum_final
        self.momentum = float(momentum_base)
        self.output_encoder = output_encoder

    def student_network(self) -> nn.Module:
        """The student modules that the teacher mirrors, with the teacher's parameter names."""
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.output_encoder == "teacher":
            return self.teacher.embed(x)  # the teacher's copy of the student network embeds with its encoder
        return super().embed(x)

    def delivered_encoder(self) -> nn.Module:
        """The student's encoder, or the teacher's copy of it (found at the same path in the teacher network)."""
        if self.output_encoder == "student":
            return self.encoder
        student, teacher = self.student_network(), self.teacher.module
        if student is self.encoder:
            return teacher
        path = next(name for name, m in student.named_modules() if m is self.encoder)
        return teacher.get_submodule(path)

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

"""The EMA teacher of BYOL, DINO and JEPA: a frozen copy of a student network that follows it by momentum.

The copy lives outside the module tree that DeepSpeed sees (a hidden attribute, not a submodule): it is never
partitioned by ZeRO-3, never cast to bf16, never handed to the optimizer and gets no gradients. Its weights stay
in fp32 on every rank, identical everywhere, because every rank applies the same update from the same student.
It still travels with the DeepSpeed checkpoint: `get_extra_state` puts its weights into the method's
`state_dict` (key `<name>._extra_state`), which DeepSpeed saves with the module and restores on resume.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn


def _no_gather(params: Iterable[nn.Parameter]) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


class EMATeacher(nn.Module):
    """`teacher = m * teacher + (1 - m) * student` after each optimizer step; forward runs without gradients.

    Build it from the student before `deepspeed.initialize` (the copy is taken then). Outputs are fp32.
    `gather(params)` is the context in which the student's parameters hold their full values; the engine sets it
    under ZeRO-3, which partitions them (engine/zero_gather.py), and it does nothing by default.
    """

    gather: Callable[[Iterable[nn.Parameter]], contextlib.AbstractContextManager] = staticmethod(_no_gather)

    def __init__(self, student: nn.Module):
        super().__init__()
        teacher = copy.deepcopy(student).float().eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        # Plain attributes, not submodules: DeepSpeed and the optimizer must not see them.
        object.__setattr__(self, "_teacher", teacher)
        object.__setattr__(self, "_student", student)

    @property
    def module(self) -> nn.Module:
        """The teacher network itself (frozen, fp32)."""
        return self._teacher

    def train(self, mode: bool = True) -> EMATeacher:
        """The teacher always runs in eval mode (no dropout), whatever the method's mode."""
        super().train(mode)
        self._teacher.eval()
        return self

    def _move_to(self, device: torch.device) -> None:
        first = next(self._teacher.parameters(), None)
        if first is not None and first.device != device:
            self._teacher.to(device)

    @torch.no_grad()
    def update(self, student: nn.Module, momentum: float) -> None:
        """Move the teacher towards `student`; every rank must call it (ZeRO-3 gathers the student's shards)."""
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"EMA momentum must lie in [0, 1], got {momentum}")
        student_params = dict(student.named_parameters())
        teacher_params = dict(self._teacher.named_parameters())
        if student_params.keys() != teacher_params.keys():
            missing = sorted(set(student_params) ^ set(teacher_params))[:5]
            raise ValueError(f"student and EMA teacher differ in parameters: {missing}")
        names = list(teacher_params)
        with self.gather([student_params[n] for n in names]):
            self._move_to(student_params[names[0]].device if names else torch.device("cpu"))
            t = [teacher_params[n].data for n in names]
            s = [student_params[n].data.to(torch.float32) for n in names]
            if momentum == 0.0:
                torch._foreach_copy_(t, s)
            else:
                torch._foreach_mul_(t, momentum)
                torch._foreach_add_(t, s, alpha=1.0 - momentum)
        teacher_buffers = dict(self._teacher.named_buffers())
        for name, buf in student.named_buffers():
            if name in teacher_buffers:
                teacher_buffers[name].copy_(buf)

    def copy_from_student(self) -> None:
        """Reset the teacher to the student it was built from (after a warm start loads new student weights)."""
        self.update(self._student, 0.0)

    @torch.no_grad()
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._teacher, *args, **kwargs)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher encoder's `embed`, for teachers built from an encoder."""
        return self._call(self._teacher.embed, x)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if tensors:
            self._move_to(tensors[0].device)

        def fp32(a: Any) -> Any:
            return a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a

        return fn(*(fp32(a) for a in args), **{k: fp32(v) for k, v in kwargs.items()})

    def get_extra_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self._teacher.state_dict().items()}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"EMA teacher state must be a dict of tensors, got {type(state).__name__}")
        self._teacher.load_state_dict(state)


def ema_teachers(module: nn.Module) -> list[EMATeacher]:
    """Every EMA teacher inside a method."""
    return [m for m in module.modules() if isinstance(m, EMATeacher)]

"""DINO: a student matches an EMA teacher's centred, sharpened prototype scores across multi-crop views."""

from __future__ import annotations

import torch
from torch import nn

from distributed_ssl.losses.dino_loss import DINOLoss
from distributed_ssl.methods.ema_method import EMATeacherMethod
from distributed_ssl.methods.ema_teacher import EMATeacher
from distributed_ssl.models.dino_head import DINOHead
from distributed_ssl.models.encoder_with_head import EncoderWithHead


class DINO(EMATeacherMethod):
    """The teacher (EMA of encoder + head) sees the global views `view_0..`; the student sees those and the
    local views `local_0..`, which are smaller, so they go through the encoder as a second batch.

    The teacher temperature follows the engine's `teacher_temp` schedule (a warm-up from `teacher_temp_start` to
    `teacher_temp`), set through `apply_schedule`; `teacher_temp_start` until then."""

    schedules = ("ema_momentum", "teacher_temp")

    def __init__(self, encoder: nn.Module, dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int,
                 num_global_views: int = 2, num_local_views: int = 0, student_temp: float = 0.1,
                 teacher_temp: float = 0.07, teacher_temp_start: float = 0.04,
                 teacher_temp_warmup_fraction: float = 0.3, center_momentum: float = 0.9,
                 momentum_base: float = 0.996, momentum_final: float = 1.0, gather_distributed: bool = True):
        super().__init__(momentum_base, momentum_final)
        self.num_global_views = num_global_views
        self.num_local_views = num_local_views
        self.teacher_temp_final = teacher_temp
        self.teacher_temp_start = teacher_temp_start
        self.teacher_temp_warmup_fraction = teacher_temp_warmup_fraction
        self.teacher_temp = float(teacher_temp_start)
        self.encoder = encoder
        self.head = DINOHead(dim, hidden_dim, bottleneck_dim, out_dim)
        self.teacher = EMATeacher(self.student_network())
        self.criterion = DINOLoss(out_dim, student_temp, center_momentum, gather_distributed)

    def student_network(self) -> nn.Module:
        return EncoderWithHead(self.encoder, self.head)

    def apply_schedule(self, name: str, value: float) -> None:
        if name == "teacher_temp":
            self.teacher_temp = float(value)
        else:
            super().apply_schedule(name, value)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        g, m = self.num_global_views, self.num_local_views
        missing = [k for k in [*(f"view_{i}" for i in range(g)), *(f"local_{i}" for i in range(m))]
                   if k not in batch]
        if missing:
            raise KeyError(f"DINO expects batch keys {', '.join(missing)} (method.num_global_views={g}, "
                           f"method.num_local_views={m})")
        global_views = torch.cat([batch[f"view_{i}"] for i in range(g)], dim=0)
        teacher_out = self.teacher(global_views).chunk(g)
        student_out = list(self.head(self.encoder.embed(global_views)).chunk(g))
        if m:
            local_views = torch.cat([batch[f"local_{i}"] for i in range(m)], dim=0)
            student_out += list(self.head(self.encoder.embed(local_views)).chunk(m))
        temp = self.teacher_temp
        loss = self.criterion(student_out, list(teacher_out), temp)
        return {"loss": loss, "teacher_temp": loss.new_tensor(temp)}

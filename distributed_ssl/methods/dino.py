"""DINO: a student matches an EMA teacher's centred, sharpened prototype scores across multi-crop views."""

from __future__ import annotations

import torch
from torch import nn

from distributed_ssl.config.method_configs import DINOConfig
from distributed_ssl.losses.dino_loss import DINOLoss
from distributed_ssl.methods.base import register_method
from distributed_ssl.methods.ema_method import EMATeacherMethod
from distributed_ssl.methods.ema_teacher import EMATeacher
from distributed_ssl.modalities.view_spec import ViewSpec
from distributed_ssl.models.dino_head import DINOHead
from distributed_ssl.models.encoder_with_head import EncoderWithHead


@register_method("dino")
class DINO(EMATeacherMethod):
    """The teacher (EMA of encoder + head) sees the global views `view_0..`; the student sees those and the
    local views `local_0..`, which are smaller, so they go through the encoder as a second batch.

    Built from its config: the head is `proj_hidden_dim` wide with a `proj_dim` bottleneck and `dino_out_dim`
    prototypes; the counts and sizes of the multi-crop views are `num_global_views`, `num_local_views`, ...
    The teacher temperature follows the engine's `teacher_temp` schedule (a warm-up from `teacher_temp_start` to
    `teacher_temp`), set through `apply_schedule`; `teacher_temp_start` until then. The `prototypes_frozen`
    schedule holds the head's prototypes still for the first `freeze_prototypes_fraction` of the steps."""

    views = ViewSpec(num_views=2, augment="strong", mask=False, num_local_views=4)  # defaults; see view_spec
    schedules = ("ema_momentum", "teacher_temp", "prototypes_frozen")

    def __init__(self, encoder: nn.Module, cfg: DINOConfig):
        super().__init__(cfg.momentum_base, cfg.momentum_final, cfg.output_encoder)
        self.num_global_views = cfg.num_global_views
        self.num_local_views = cfg.num_local_views
        self.teacher_temp = float(cfg.teacher_temp_start)
        self.encoder = encoder
        self.head = DINOHead(encoder.embed_dim, cfg.proj_hidden_dim, cfg.proj_dim, cfg.dino_out_dim)
        self.teacher = EMATeacher(self.student_network())
        self.criterion = DINOLoss(cfg.dino_out_dim, cfg.student_temp, cfg.center_momentum, cfg.gather_distributed)

    @classmethod
    def from_config(cls, encoder: nn.Module, cfg: DINOConfig) -> DINO:
        return cls(encoder, cfg)

    @classmethod
    def view_spec(cls, cfg: DINOConfig) -> ViewSpec:
        """Multi-crop: the counts and sizes of the views are hyperparameters."""
        return ViewSpec(num_views=cfg.num_global_views, augment="strong", mask=False,
                        num_local_views=cfg.num_local_views,
                        local_scale=(cfg.local_crop_scale_min, cfg.local_crop_scale_max), local_size=cfg.local_size)

    def student_network(self) -> nn.Module:
        return EncoderWithHead(self.encoder, self.head)

    def apply_schedule(self, name: str, value: float) -> None:
        if name == "teacher_temp":
            self.teacher_temp = float(value)
        elif name == "prototypes_frozen":
            self.head.prototypes_frozen = value > 0.5
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

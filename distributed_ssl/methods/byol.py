"""BYOL: an online network predicts an EMA target network's projection of another view; no negatives."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from distributed_ssl.config.method_configs import BYOLConfig
from distributed_ssl.losses.byol_loss import BYOLLoss
from distributed_ssl.methods.base import register_method
from distributed_ssl.methods.ema_method import EMATeacherMethod
from distributed_ssl.methods.ema_teacher import EMATeacher
from distributed_ssl.modalities.view_spec import ViewSpec
from distributed_ssl.models.encoder_with_head import EncoderWithHead
from distributed_ssl.models.heads import ProjectionHead


@register_method("byol")
class BYOL(EMATeacherMethod):
    """Online: encoder → projector → predictor. Target: EMA copy of encoder → projector (no predictor).

    The predictor and the slowly moving target keep the online network from the constant solution, so no
    negatives, large batches or cross-rank gathers are needed.
    """

    views = ViewSpec(num_views=2, augment="strong", mask=False)

    def __init__(self, encoder: nn.Module, dim: int, proj_hidden_dim: int, proj_dim: int, predictor_hidden_dim: int,
                 momentum_base: float = 0.996, momentum_final: float = 1.0, num_views: int = 2,
                 output_encoder: Literal["student", "teacher"] = "student"):
        super().__init__(momentum_base, momentum_final, output_encoder)
        self.num_views = num_views
        self.encoder = encoder
        self.projector = ProjectionHead(dim, proj_hidden_dim, proj_dim)
        self.predictor = ProjectionHead(proj_dim, predictor_hidden_dim, proj_dim)
        self.teacher = EMATeacher(self.student_network())
        self.criterion = BYOLLoss()

    @classmethod
    def from_config(cls, encoder: nn.Module, cfg: BYOLConfig) -> BYOL:
        return cls(encoder, encoder.embed_dim, cfg.proj_hidden_dim, cfg.proj_dim, cfg.predictor_hidden_dim,
                   cfg.momentum_base, cfg.momentum_final, output_encoder=cfg.output_encoder)

    def student_network(self) -> nn.Module:
        return EncoderWithHead(self.encoder, self.projector)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        views = torch.cat([batch[f"view_{i}"] for i in range(self.num_views)], dim=0)
        # One pass over all views keeps a single collective sequence under ZeRO-3.
        predictions = self.predictor(self.projector(self.encoder.embed(views))).chunk(self.num_views)
        targets = self.teacher(views).chunk(self.num_views)
        loss = self.criterion(list(predictions), list(targets))
        return {"loss": loss, "momentum": loss.new_tensor(self.momentum)}

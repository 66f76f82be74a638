"""JEPA (I-JEPA, Assran et al. 2023; Point-JEPA and A-JEPA for other modalities): predict, in feature space, what
an EMA target encoder sees in hidden target blocks, from a context block of the same input.

No pixels are reconstructed and no views are contrasted: the prediction target is abstract (the target encoder's
layer-normed patch features), and the multi-block masks (large context, several medium targets) make the task
semantic rather than local texture completion.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from distributed_ssl.config.method_configs import JEPAConfig
from distributed_ssl.methods.base import register_method
from distributed_ssl.methods.ema_method import EMATeacherMethod
from distributed_ssl.methods.ema_teacher import EMATeacher
from distributed_ssl.modalities.multiblock_masking import equalize_masks
from distributed_ssl.modalities.view_spec import ViewSpec
from distributed_ssl.models.jepa_predictor import JEPAPredictor, block_size


def target_features(teacher_tokens: torch.Tensor, target_masks: torch.Tensor) -> torch.Tensor:
    """Layer-normed patch features [B, N, D] of the target encoder, gathered per block → [B, K, T, D]."""
    b, k, n = target_masks.shape
    feats = F.layer_norm(teacher_tokens, teacher_tokens.shape[-1:])
    d = feats.shape[-1]
    return feats.unsqueeze(1).expand(b, k, n, d)[target_masks].view(b, k, block_size(target_masks), d)


@register_method("jepa")
class JEPA(EMATeacherMethod):
    """Context encoder (`encoder`, trained) on the context patches, EMA target encoder on all patches, predictor
    from context tokens to the target blocks' features. The batch holds `view_0`, `mask` (True = outside the
    context) and `target_masks` [B, K, N], made on the data side by `multiblock_masking` and equalised here
    (a training batch may mix rows of data-side batches with different block sizes)."""

    views = ViewSpec(num_views=1, augment="light", mask=True, mask_kind="multiblock")

    def __init__(self, encoder: nn.Module, predictor_dim: int, predictor_depth: int, predictor_heads: int,
                 loss: Literal["smooth_l1", "mse"] = "smooth_l1", momentum_base: float = 0.996,
                 momentum_final: float = 1.0, output_encoder: Literal["student", "teacher"] = "student"):
        super().__init__(momentum_base, momentum_final, output_encoder)
        self.encoder = encoder
        self.predictor = JEPAPredictor(encoder.dim, predictor_dim, predictor_depth, predictor_heads,
                                       encoder.decoder_position_embedding(predictor_dim))
        self.teacher = EMATeacher(self.encoder)
        if loss not in ("smooth_l1", "mse"):
            raise ValueError(f"method.jepa_loss must be smooth_l1 or mse, got {loss!r}")
        self.distance = F.smooth_l1_loss if loss == "smooth_l1" else F.mse_loss

    @classmethod
    def from_config(cls, encoder: nn.Module, cfg: JEPAConfig) -> JEPA:
        return cls(encoder, cfg.predictor_dim, cfg.predictor_depth, cfg.predictor_heads, cfg.jepa_loss,
                   cfg.momentum_base, cfg.momentum_final, cfg.output_encoder)

    def student_network(self) -> nn.Module:
        return self.encoder

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["view_0"]
        context_mask, target_masks = equalize_masks(batch["mask"].bool(), batch["target_masks"].bool())
        targets = target_features(self.teacher(x)[:, 1:], target_masks)  # no grad: the teacher is frozen
        context = self.encoder(x, context_mask)[:, 1:]  # drop the class token
        pred = self.predictor(context, context_mask, target_masks, x)
        loss = self.distance(pred.float(), targets.float())
        return {"loss": loss, "momentum": loss.new_tensor(self.momentum),
                "context_fraction": (~context_mask).float().mean(),
                "target_fraction": target_masks.any(dim=1).float().mean()}

"""SimCLR: two strongly augmented views, a projection head, InfoNCE with negatives from every rank."""

from __future__ import annotations

import torch
from torch import nn

from distributed_ssl.config.method_configs import SimCLRConfig
from distributed_ssl.losses.info_nce_loss import InfoNCELoss
from distributed_ssl.methods.base import Method, register_method
from distributed_ssl.modalities.view_spec import ViewSpec
from distributed_ssl.models.heads import ProjectionHead


@register_method("simclr")
class SimCLR(Method):
    views = ViewSpec(num_views=2, augment="strong", mask=False)

    def __init__(self, encoder: nn.Module, dim: int, hidden_dim: int, out_dim: int, temperature: float,
                 gather_distributed: bool = True):
        super().__init__()
        self.encoder = encoder
        self.projector = ProjectionHead(dim, hidden_dim, out_dim)
        self.criterion = InfoNCELoss(temperature, gather_distributed)

    @classmethod
    def from_config(cls, encoder: nn.Module, cfg: SimCLRConfig) -> SimCLR:
        return cls(encoder, encoder.embed_dim, cfg.proj_hidden_dim, cfg.proj_dim, cfg.temperature, cfg.gather_distributed)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        n = batch["view_0"].shape[0]
        # One encoder pass over both views keeps a single collective sequence under ZeRO-3.
        features = self.encoder.embed(torch.cat([batch["view_0"], batch["view_1"]], dim=0))
        z = self.projector(features)
        loss = self.criterion(z[:n], z[n:])
        return {"loss": loss}

"""Masked autoencoder: the encoder sees only visible patches, a light decoder reconstructs the hidden ones."""

from __future__ import annotations

import torch
from torch import nn

from distributed_ssl.config.method_configs import MAEConfig
from distributed_ssl.methods.base import Method, register_method
from distributed_ssl.modalities.view_spec import ViewSpec
from distributed_ssl.models.heads import MAEDecoder


@register_method("mae")
class MAE(Method):
    """Modality-agnostic: the encoder supplies the reconstruction target (`patchify`), the decoder's position
    embedding and the criterion (pixel MSE for ViT patches, Chamfer for point patches)."""

    views = ViewSpec(num_views=1, augment="light", mask=True)

    def __init__(self, encoder: nn.Module, decoder_dim: int, decoder_depth: int, decoder_heads: int,
                 norm_pix_loss: bool = True):
        super().__init__()
        self.encoder = encoder
        self.decoder = MAEDecoder(encoder.dim, decoder_dim, decoder_depth, decoder_heads,
                                  encoder.decoder_position_embedding(decoder_dim), encoder.patch_dim)
        self.criterion = encoder.reconstruction_loss(norm_pix_loss)

    @classmethod
    def from_config(cls, encoder: nn.Module, cfg: MAEConfig) -> MAE:
        return cls(encoder, cfg.decoder_dim, cfg.decoder_depth, cfg.decoder_heads, cfg.norm_pix_loss)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, mask = batch["view_0"], batch["mask"].bool()
        latent = self.encoder(x, mask)
        pred = self.decoder(latent, mask, x)
        loss = self.criterion(pred, self.encoder.patchify(x), mask)
        return {"loss": loss, "mask_ratio": mask.float().mean()}

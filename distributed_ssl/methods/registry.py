"""Build a method (and its encoder) from the config; say what data-side views it needs."""

from __future__ import annotations

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.methods.base import Method
from distributed_ssl.methods.mae import MAE
from distributed_ssl.methods.simclr import SimCLR
from distributed_ssl.modalities.registry import get_modality
from distributed_ssl.modalities.view_spec import ViewSpec
from distributed_ssl.models.registry import build_encoder

_VIEWS = {
    "simclr": ViewSpec(num_views=2, augment="strong", mask=False),
    "mae": ViewSpec(num_views=1, augment="light", mask=True),
}


def method_names() -> list[str]:
    return sorted(_VIEWS)


def view_spec_for(cfg: SSLConfig) -> ViewSpec:
    return _VIEWS[cfg.method.name]


def build_encoder_for(cfg: SSLConfig):
    modality = get_modality(cfg.modality.name)
    return build_encoder(cfg.model.encoder, dim=cfg.model.dim, depth=cfg.model.depth, heads=cfg.model.heads,
                         **modality.encoder_kwargs(cfg))


def build_method(cfg: SSLConfig) -> Method:
    encoder = build_encoder_for(cfg)
    m = cfg.method
    if m.name == "simclr":
        return SimCLR(encoder, encoder.dim, m.proj_hidden_dim, m.proj_dim, m.temperature, m.gather_distributed)
    if m.name == "mae":
        return MAE(encoder, m.decoder_dim, m.decoder_depth, m.decoder_heads, m.norm_pix_loss)
    raise ValueError(f"unknown method {m.name!r} (method.name); known: {', '.join(method_names())}")

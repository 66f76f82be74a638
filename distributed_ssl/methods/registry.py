"""Build a method (and its encoder) from the config; say what data-side views it needs."""

from __future__ import annotations

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.methods.base import Method
from distributed_ssl.methods.byol import BYOL
from distributed_ssl.methods.dino import DINO
from distributed_ssl.methods.jepa import JEPA
from distributed_ssl.methods.mae import MAE
from distributed_ssl.methods.simclr import SimCLR
from distributed_ssl.modalities.registry import get_modality
from distributed_ssl.modalities.view_spec import ViewSpec
from distributed_ssl.models.registry import build_encoder

_VIEWS = {
    "simclr": ViewSpec(num_views=2, augment="strong", mask=False),
    "mae": ViewSpec(num_views=1, augment="light", mask=True),
    "byol": ViewSpec(num_views=2, augment="strong", mask=False),
    "jepa": ViewSpec(num_views=1, augment="light", mask=True, mask_kind="multiblock"),
    "dino": ViewSpec(num_views=2, augment="strong", mask=False, num_local_views=4),  # sized by method.* below
}


def method_names() -> list[str]:
    return sorted(_VIEWS)


def view_spec_for(cfg: SSLConfig) -> ViewSpec:
    m = cfg.method
    if m.name == "dino":  # multi-crop: the counts and sizes of the views are hyperparameters
        return ViewSpec(num_views=m.num_global_views, augment="strong", mask=False,
                        num_local_views=m.num_local_views,
                        local_scale=(m.local_crop_scale_min, m.local_crop_scale_max), local_size=m.local_size)
    return _VIEWS[m.name]


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
    if m.name == "byol":
        return BYOL(encoder, encoder.dim, m.proj_hidden_dim, m.proj_dim, m.predictor_hidden_dim, m.momentum_base,
                    m.momentum_final)
    if m.name == "dino":
        return DINO(encoder, encoder.dim, m.proj_hidden_dim, m.proj_dim, m.dino_out_dim, m.num_global_views,
                    m.num_local_views, m.student_temp, m.teacher_temp, m.teacher_temp_start,
                    m.teacher_temp_warmup_fraction, m.center_momentum, m.momentum_base, m.momentum_final,
                    m.gather_distributed)
    if m.name == "jepa":
        return JEPA(encoder, m.predictor_dim, m.predictor_depth, m.predictor_heads, m.jepa_loss, m.momentum_base,
                    m.momentum_final)
    raise ValueError(f"unknown method {m.name!r} (method.name); known: {', '.join(method_names())}")

"""DINO multi-crop on every modality: local views are smaller, encoders take them, every parameter learns."""

from __future__ import annotations

import pytest
import torch

from distributed_ssl.config import load_config
from distributed_ssl.methods.registry import build_method, view_spec_for
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.modalities.view_spec import ViewSpec

B = 3
CASES = {
    "image": (["modality.image_size=32", "model.patch_size=8", "model.encoder=vit_debug"],
              {"view": (B, 3, 32, 32), "local": (B, 3, 16, 16)}),
    "audio": (["modality.clip_seconds=1.0", "modality.hop_length=256", "modality.n_mels=32", "model.patch_size=8",
               "model.encoder=vit_debug"],
              {"view": (B, 1, 32, 56), "local": (B, 1, 32, 32)}),  # 63 frames → 56; 0.5 s: 32 frames
    "lidar": (["modality.num_points=256", "modality.num_groups=16", "modality.group_size=8",
               "model.encoder=point_debug"],
              {"view": (B, 16, 9, 4), "local": (B, 8, 9, 4)}),  # half the points and half the patches
}


def _raw(modality: str, cfg) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if modality == "image":
        return torch.rand(B, 3, 32, 32, generator=gen)
    if modality == "audio":  # clips of different lengths, NaN after each end, as decode makes them
        wave = torch.randn(B, 24000, generator=gen) * 0.1
        wave[0, 18000:] = float("nan")
        return wave
    return torch.randn(B, cfg.modality.num_points, 4, generator=gen)


@pytest.mark.parametrize("modality", sorted(CASES))
def test_dino_views_have_global_and_smaller_local_shapes_and_train_every_parameter(modality):
    overrides, shapes = CASES[modality]
    cfg = load_config(None, [f"modality.name={modality}", "method.name=dino", "method.num_local_views=3",
                             "method.dino_out_dim=32", "method.proj_hidden_dim=32", "method.proj_dim=16",
                             *overrides])
    spec = view_spec_for(cfg)
    assert (spec.num_views, spec.num_local_views, spec.local_size) == (2, 3, 0.5)
    views = build_modality(cfg).make_views(_raw(modality, cfg), spec, torch.Generator().manual_seed(1))
    assert sorted(views) == ["local_0", "local_1", "local_2", "view_0", "view_1"]
    for key, value in views.items():
        assert value.shape == shapes["view" if key.startswith("view_") else "local"], key
        assert value.dtype == "float32" and bool((value == value).all()), key

    method = build_method(cfg)
    batch = {k: torch.from_numpy(v) for k, v in views.items()}
    local_embedding = method.encoder.embed(batch["local_0"])
    assert local_embedding.shape == (B, method.encoder.embed_dim)
    out = method(batch)
    out["loss"].backward()
    missing = [n for n, p in method.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_local_views_come_from_small_regions_of_the_cloud():
    cfg = load_config(None, ["modality.name=lidar", "modality.num_points=512", "modality.num_groups=16",
                             "modality.group_size=8", "augment.point_dropout_max=0", "augment.point_rotation_deg=0",
                             "augment.point_jitter_sigma=0", "augment.point_scale_min=1", "augment.point_scale_max=1"])
    raw = torch.randn(2, 512, 4, generator=torch.Generator().manual_seed(0))  # seeded: not the global stream
    spec = ViewSpec(num_views=1, num_local_views=1, local_scale=(0.05, 0.1), local_size=0.5)
    views = build_modality(cfg).make_views(raw, spec, torch.Generator().manual_seed(0))

    def extent(tokens):  # spread of the patch centres
        return float(torch.from_numpy(tokens[:, :, 0, :3]).std(dim=1).mean())

    assert extent(views["local_0"]) < 0.6 * extent(views["view_0"])


def test_view_spec_rejects_bad_local_settings():
    with pytest.raises(ValueError, match="local_scale"):
        ViewSpec(local_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="local_size"):
        ViewSpec(local_size=0.0)

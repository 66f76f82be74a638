"""DINO's prototype freeze: for the first `method.freeze_prototypes_fraction` of the steps the head's prototypes
get no gradient while the rest of the network learns; afterwards they learn too."""

from __future__ import annotations

import torch

from distributed_ssl.config import load_config
from distributed_ssl.engine.schedules import build_schedules, values_at
from distributed_ssl.methods.registry import build_method, view_spec_for
from distributed_ssl.modalities.registry import build_modality


def _gradients_at(method, batch, frozen: float) -> dict[str, torch.Tensor | None]:
    method.zero_grad(set_to_none=True)
    method.apply_schedule("prototypes_frozen", frozen)
    method(batch)["loss"].backward()
    return {name: p.grad for name, p in method.named_parameters()}


def test_prototypes_get_no_gradient_while_frozen_and_learn_after():
    cfg = load_config(None, ["modality.name=image", "modality.image_size=32", "model.patch_size=8",
                             "model.encoder=vit_debug", "method.name=dino", "method.num_local_views=2",
                             "method.dino_out_dim=32", "method.proj_hidden_dim=32", "method.proj_dim=16",
                             "method.freeze_prototypes_fraction=0.25"])
    frozen = build_schedules(cfg, ("prototypes_frozen",), 20)["prototypes_frozen"]
    assert frozen.tolist() == [1.0] * 5 + [0.0] * 15
    assert values_at({"prototypes_frozen": frozen}, 4)["prototypes_frozen"] == 1.0

    torch.manual_seed(0)
    method = build_method(cfg)
    views = build_modality(cfg).make_views(torch.rand(4, 3, 32, 32), view_spec_for(cfg),
                                           torch.Generator().manual_seed(1))
    batch = {k: torch.from_numpy(v) for k, v in views.items()}

    while_frozen = _gradients_at(method, batch, 1.0)
    assert while_frozen["head.prototypes"] is None
    learning = [n for n, g in while_frozen.items() if g is not None and g.abs().sum() > 0]
    assert "head.mlp.0.weight" in learning and "encoder.patch_embed.weight" in learning

    after = _gradients_at(method, batch, 0.0)
    assert after["head.prototypes"] is not None and after["head.prototypes"].abs().sum() > 0


def test_no_freeze_by_default():
    cfg = load_config(None, ["method.name=dino"])
    assert build_schedules(cfg, ("prototypes_frozen",), 10)["prototypes_frozen"].sum() == 0

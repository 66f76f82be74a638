"""JEPA's forward pass against a reference written here, its gradients, and a few steps of learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from distributed_ssl.config import load_config
from distributed_ssl.methods.jepa import JEPA, target_features
from distributed_ssl.methods.registry import build_method, view_spec_for
from distributed_ssl.modalities.registry import build_modality

CASES = {
    "image": (["model.encoder=vit_debug"], lambda g: torch.rand(6, 3, 32, 32, generator=g)),
    "audio": (["model.encoder=vit_debug", "model.patch_size=8"], lambda g: 0.1 * torch.randn(6, 16000, generator=g)),
    "lidar": (["model.encoder=point_debug", "modality.num_points=256", "modality.num_groups=16",
               "modality.group_size=8"], lambda g: torch.randn(6, 256, 4, generator=g)),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(modality: str, *extra: str):
    overrides, make_raw = CASES[modality]
    cfg = load_config(None, [f"modality.name={modality}", "method.name=jepa", "method.predictor_dim=32",
                             "method.predictor_depth=1", *overrides, *extra])
    g = torch.Generator().manual_seed(0)
    views = build_modality(cfg).make_views(make_raw(g), view_spec_for(cfg), g)
    torch.manual_seed(0)
    return cfg, build_method(cfg), {k: torch.from_numpy(v) for k, v in views.items()}


def test_target_features_are_layer_normed_teacher_tokens_at_each_block():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 6, 4, generator=g) * 3 + 1
    targets = torch.zeros(2, 2, 6, dtype=torch.bool)
    targets[0, 0, [0, 1]] = targets[0, 1, [4, 5]] = targets[1, 0, [2, 3]] = targets[1, 1, [0, 5]] = True
    got = target_features(tokens, targets)
    assert got.shape == (2, 2, 2, 4)
    for b in range(2):
        for k in range(2):
            idx = targets[b, k].nonzero().squeeze(1)
            ref = (tokens[b, idx] - tokens[b, idx].mean(-1, keepdim=True)) / torch.sqrt(
                tokens[b, idx].var(-1, unbiased=False, keepdim=True) + 1e-5)
            torch.testing.assert_close(got[b, k], ref)


@pytest.mark.parametrize("modality", sorted(CASES))
def test_forward_matches_reference_and_trains_only_the_student(modality):
    cfg, method, batch = _setup(modality)
    assert isinstance(method, JEPA)
    out = method(batch)
    x, mask, targets = batch["view_0"], batch["mask"], batch["target_masks"]
    with torch.no_grad():  # reference: the pieces by hand, smooth L1 to layer-normed EMA-encoder features
        full = method.teacher.module(x)[:, 1:]
        tgt = target_features(full, targets)
        pred = method.predictor(method.encoder(x, mask)[:, 1:], mask, targets, x)
    assert pred.shape == tgt.shape == (6, cfg.mask.num_targets, int(targets[0, 0].sum()), method.encoder.dim)
    torch.testing.assert_close(out["loss"], F.smooth_l1_loss(pred, tgt))
    out["loss"].backward()
    missing = [n for n, p in method.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    assert not any(p.requires_grad for p in method.teacher.module.parameters())
    own = {id(p) for p in method.parameters()}
    assert not any(id(p) in own for p in method.teacher.module.parameters())  # not in what the optimizer gets


def test_a_few_steps_lower_the_loss_and_move_the_teacher():
    cfg, method, batch = _setup("image", "method.jepa_loss=mse")
    before = [p.clone() for p in method.teacher.module.parameters()]
    opt = torch.optim.AdamW(method.parameters(), lr=2e-3)
    losses = []
    for step in range(1, 21):
        loss = method(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.on_step_end(step)
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) < sum(losses[:3]), losses
    moved = sum(float((a - b).abs().sum()) for a, b in zip(before, method.teacher.module.parameters(), strict=True))
    assert moved > 0


def test_a_training_batch_mixing_data_side_batches_is_equalised():
    """The local shuffle buffer mixes rows of data-side batches whose block sizes differ; JEPA still trains."""
    cfg, method, first = _setup("image")
    g = torch.Generator().manual_seed(7)
    wider = cfg.model_copy(update={"mask": cfg.mask.model_copy(update={"target_scale_min": 0.25,
                                                                        "target_scale_max": 0.3})})
    other = build_modality(wider).make_views(torch.rand(6, 3, 32, 32, generator=g), view_spec_for(cfg), g)
    mixed = {k: torch.cat([first[k][:3], torch.from_numpy(other[k])[:3]]) for k in first}
    assert mixed["target_masks"].sum(-1).unique().numel() > 1  # really two block sizes
    out = method(mixed)
    assert torch.isfinite(out["loss"])

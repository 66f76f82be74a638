import pytest
import torch

from distributed_ssl.config import load_config
from distributed_ssl.methods.registry import build_method
from distributed_ssl.models import build_encoder, encoder_names


def _encoder_and_input(name):
    """Each family with its own input: image patches for vit_*, tokenised point patches for point_*."""
    if name.startswith("point_"):
        enc = build_encoder(name, num_groups=8, group_size=6, point_channels=4)
        return enc, torch.randn(2, 8, 7, 4)
    return build_encoder(name, input_size=(32, 32), in_channels=3, patch_size=8), torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("name", encoder_names())
def test_every_encoder_forward_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    enc, x = _encoder_and_input(name)
    tokens = enc(x)
    assert tokens.shape == (2, 1 + enc.num_patches, enc.dim)
    emb = enc.embed(x)
    assert emb.shape == (2, enc.dim)
    (tokens.pow(2).mean() + emb.mean()).backward()
    missing = [n for n, p in enc.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not missing, f"no gradient for {missing}"


def test_masked_forward_keeps_only_visible_patches():
    enc = build_encoder("vit_debug", input_size=(32, 32), in_channels=3, patch_size=4)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, :48] = True
    assert enc(torch.randn(2, 3, 32, 32), mask).shape == (2, 1 + 16, enc.dim)
    ragged = mask.clone()
    ragged[0, 50] = True
    with pytest.raises(ValueError, match="same number"):
        enc(torch.randn(2, 3, 32, 32), ragged)


def test_unknown_encoder_lists_known():
    with pytest.raises(ValueError, match="vit_tiny"):
        build_encoder("resnet9000", input_size=(32, 32), in_channels=3, patch_size=4)


def test_encoder_of_the_wrong_family_says_which_fits():
    with pytest.raises(ValueError, match="num_groups.*vit_"):
        build_encoder("point_debug", input_size=(32, 32), in_channels=3, patch_size=4)
    with pytest.raises(ValueError, match="input_size.*point_"):
        build_encoder("vit_debug", num_groups=8, group_size=6, point_channels=4)


@pytest.mark.parametrize("method", ["simclr", "mae"])
def test_methods_give_gradients_to_every_parameter(method):
    torch.manual_seed(0)
    cfg = load_config(None, [f"method.name={method}", "model.encoder=vit_debug"])
    m = build_method(cfg)
    batch = {"view_0": torch.randn(4, 3, 32, 32), "view_1": torch.randn(4, 3, 32, 32)}
    if method == "mae":
        mask = torch.zeros(4, 64, dtype=torch.bool)
        mask[:, ::4] = True
        batch["mask"] = ~mask
    out = m(batch)
    out["loss"].backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing and torch.isfinite(out["loss"])

import torch

from distributed_ssl.config import load_config
from distributed_ssl.modalities.image_augment import (
    color_jitter,
    random_gaussian_blur,
    random_grayscale,
    random_resized_crop,
    strong_view,
)
from distributed_ssl.modalities.masking import random_patch_mask


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_full_crop_without_flip_is_identity():
    x = torch.rand(4, 3, 16, 16)
    out = random_resized_crop(x, 16, (1.0, 1.0), (1.0, 1.0), 0.0, _gen())
    assert torch.allclose(out, x, atol=1e-5)


def test_flip_always_mirrors():
    x = torch.rand(2, 3, 16, 16)
    out = random_resized_crop(x, 16, (1.0, 1.0), (1.0, 1.0), 1.0, _gen())
    assert torch.allclose(out, x.flip(-1), atol=1e-5)


def test_crop_zooms_into_a_part():
    x = torch.zeros(1, 1, 32, 32)
    x[..., :16, :] = 1.0
    crops = random_resized_crop(x.expand(64, 1, 32, 32), 32, (0.05, 0.1), (1.0, 1.0), 0.0, _gen())
    # small crops mostly land entirely inside one half: many crops are near-constant
    spread = crops.amax(dim=(1, 2, 3)) - crops.amin(dim=(1, 2, 3))
    assert (spread < 0.05).float().mean() > 0.5


def test_jitter_grayscale_blur_stay_in_range_and_act():
    x = torch.rand(16, 3, 16, 16)
    j = color_jitter(x, 1.0, 1.0, _gen())
    assert j.min() >= 0 and j.max() <= 1 and not torch.allclose(j, x)
    assert torch.equal(color_jitter(x, 1.0, 0.0, _gen()), x)
    g = random_grayscale(x, 1.0, _gen())
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])
    b = random_gaussian_blur(x, 1.0, (1.0, 1.0), _gen())
    assert b.var() < x.var() * 0.5
    assert torch.allclose(b.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.05)


def test_strong_views_differ_per_sample_and_call():
    cfg = load_config(None)
    x = torch.rand(8, 3, 32, 32)
    v1, v2 = strong_view(x, 32, cfg.augment, _gen(1)), strong_view(x, 32, cfg.augment, _gen(2))
    assert v1.shape == x.shape and not torch.allclose(v1, v2)


def test_mask_has_exact_ratio_per_row():
    for ratio in (0.4, 0.75, 0.9):
        mask = random_patch_mask(32, 64, ratio, _gen())
        assert mask.dtype == torch.bool
        assert (mask.sum(dim=1) == round(ratio * 64)).all()
    assert not torch.equal(random_patch_mask(4, 64, 0.5, _gen(1)), random_patch_mask(4, 64, 0.5, _gen(2)))


def _blur_all_with_identity(x, prob, sigma, gen):
    """The earlier blur: every sample convolved, the unchosen ones with an identity kernel."""
    import math

    import torch.nn.functional as F

    b, c, h, w = x.shape
    radius = max(1, min(int(math.ceil(2 * sigma[1])), (min(h, w) - 1) // 2))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    sig = sigma[0] + (sigma[1] - sigma[0]) * torch.rand(b, generator=gen)
    kernel = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sig.view(-1, 1) ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    apply = (torch.rand(b, generator=gen) < prob).view(-1, 1)
    kernel = torch.where(apply, kernel, (offsets == 0).float().expand(b, -1)).repeat_interleave(c, dim=0)
    k = kernel.shape[1]
    flat = F.pad(x.reshape(1, b * c, h, w), (radius,) * 4, mode="reflect")
    flat = F.conv2d(flat, kernel.view(b * c, 1, 1, k), groups=b * c)
    flat = F.conv2d(flat, kernel.view(b * c, 1, k, 1), groups=b * c)
    return flat.view(b, c, h, w), apply.view(-1)


def test_blur_convolves_only_the_chosen_samples_and_matches_the_full_blur():
    x = torch.rand(32, 3, 24, 24)
    out = random_gaussian_blur(x, 0.5, (0.3, 1.5), _gen())
    old, chosen = _blur_all_with_identity(x, 0.5, (0.3, 1.5), _gen())
    assert 0 < chosen.sum() < len(chosen)
    assert torch.equal(out[~chosen], x[~chosen])  # unblurred samples: the input, bit for bit
    assert torch.allclose(out, old, atol=1e-6)  # the same randomness and the same blur as before
    assert not torch.allclose(out[chosen], x[chosen])
    assert torch.equal(random_gaussian_blur(x, 1e-9, (0.3, 1.5), _gen()), x)  # none chosen: no work, no change

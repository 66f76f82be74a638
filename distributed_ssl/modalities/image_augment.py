"""Batched image augmentations in torch: every op works on a whole [B, C, H, W] batch at once.

Random resized crop and flip are one affine `grid_sample`; colour jitter, grayscale and blur use per-sample
parameters broadcast over the batch (blur is a grouped convolution with one kernel per blurred sample).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distributed_ssl.config.modality_configs import ImageAugmentConfig

_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def random_resized_crop(x: torch.Tensor, out_size: int, scale: tuple[float, float], ratio: tuple[float, float],
                        flip_prob: float, gen: torch.Generator) -> torch.Tensor:
    """Crop a random area fraction and aspect ratio from each image, resize it, and flip some horizontally."""
    b = x.shape[0]
    area = _uniform(b, *scale, gen)
    log_ratio = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), gen).exp()
    w = torch.sqrt(area * log_ratio).clamp(max=1.0)  # fraction of width
    h = torch.sqrt(area / log_ratio).clamp(max=1.0)
    cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - w)  # centre in [-1, 1] keeping the crop inside
    cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(b, generator=gen) < flip_prob, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [b, x.shape[1], out_size, out_size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    return (x * _LUMA.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)


def _rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Hue shift as a rotation of the chroma plane in YIQ space (a linear map per sample)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    to_rgb = torch.linalg.inv(to_yiq)
    cos, sin = torch.cos(2 * math.pi * turns), torch.sin(2 * math.pi * turns)
    rot = torch.zeros(len(turns), 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    matrix = to_rgb @ rot @ to_yiq  # [B, 3, 3]
    return torch.einsum("bij,bjhw->bihw", matrix, x)


def color_jitter(x: torch.Tensor, strength: float, prob: float, gen: torch.Generator) -> torch.Tensor:
    """SimCLR colour distortion: brightness, contrast, saturation (0.8·s) and hue (0.2·s), applied with `prob`."""
    b = x.shape[0]
    apply = (torch.rand(b, generator=gen) < prob).view(b, 1, 1, 1)
    s = 0.8 * strength
    bright = _uniform(b, max(0.0, 1 - s), 1 + s, gen).view(b, 1, 1, 1)
    contrast = _uniform(b, max(0.0, 1 - s), 1 + s, gen).view(b, 1, 1, 1)
    out = (x * bright).clamp(0, 1)
    mean = _gray(out).mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * contrast + mean).clamp(0, 1)
    if x.shape[1] == 3:
        sat = _uniform(b, max(0.0, 1 - s), 1 + s, gen).view(b, 1, 1, 1)
        gray = _gray(out)
        out = ((out - gray) * sat + gray).clamp(0, 1)
        hue = _uniform(b, -0.2 * strength, 0.2 * strength, gen)
        out = _rotate_hue(out, hue).clamp(0, 1)
    return torch.where(apply, out, x)


def random_grayscale(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    if x.shape[1] == 1 or prob <= 0:
        return x
    apply = (torch.rand(x.shape[0], generator=gen) < prob).view(-1, 1, 1, 1)
    return torch.where(apply, _gray(x).expand_as(x), x)


def random_gaussian_blur(x: torch.Tensor, prob: float, sigma: tuple[float, float],
                         gen: torch.Generator) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma, on the samples drawn for it (`prob`) only: the others are
    returned as they are, with no convolution (an identity kernel on them used to be most of the blur's time)."""
    if prob <= 0:
        return x
    b, c, h, w = x.shape
    radius = max(1, min(int(math.ceil(2 * sigma[1])), (min(h, w) - 1) // 2))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    sig = _uniform(b, *sigma, gen)  # drawn for every sample, so the random stream does not depend on `apply`
    apply = torch.rand(b, generator=gen) < prob
    chosen = apply.nonzero().squeeze(1)
    n = chosen.numel()
    if n == 0:
        return x
    kernel = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sig[chosen].view(-1, 1) ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [n*C, k]
    k = kernel.shape[1]
    flat = x[chosen].reshape(1, n * c, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, k), groups=n * c)
    flat = F.conv2d(flat, kernel.view(n * c, 1, k, 1), groups=n * c)
    return x.index_copy(0, chosen, flat.view(n, c, h, w))


def strong_view(x: torch.Tensor, out_size: int, cfg: ImageAugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """The SimCLR augmentation chain on a batch in [0, 1]."""
    x = random_resized_crop(x, out_size, (cfg.crop_scale_min, cfg.crop_scale_max),
                            (cfg.crop_ratio_min, cfg.crop_ratio_max), cfg.flip_prob, gen)
    x = color_jitter(x, cfg.jitter_strength, cfg.jitter_prob, gen)
    x = random_grayscale(x, cfg.grayscale_prob, gen)
    x = random_gaussian_blur(x, cfg.blur_prob, (cfg.blur_sigma_min, cfg.blur_sigma_max), gen)
    return x.clamp(0, 1)


def light_view(x: torch.Tensor, out_size: int, cfg: ImageAugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Crop and flip only, as MAE uses."""
    return random_resized_crop(x, out_size, (cfg.crop_scale_min, cfg.crop_scale_max),
                               (cfg.crop_ratio_min, cfg.crop_ratio_max), cfg.flip_prob, gen).clamp(0, 1)

"""A hand-made-feature baseline for every probe: the same kNN on features nobody trained.

`knn_top1_random_init` says what the architecture gives for free; `knn_top1_raw_features` says what the data give
for free (downsampled pixels, log-mel band statistics, point height/intensity statistics). An encoder that does
not beat the raw features has learnt nothing a few lines of numpy could not. Each feature dimension is
standardised (bank statistics) before the kNN, so no dimension wins by its units alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from distributed_ssl.config.schema import EvalConfig
from distributed_ssl.evaluation.knn_probe import knn_from_features
from distributed_ssl.evaluation.labeled_set import LabeledSplit

IMAGE_GRID = 8  # 8×8 block means per channel
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def image_features(inputs: torch.Tensor, grid: int = IMAGE_GRID) -> torch.Tensor:
    """[N, C, H, W] normalised images → [N, C·grid·grid]: area-averaged pixels, a tiny-image descriptor."""
    return F.adaptive_avg_pool2d(inputs.float(), grid).flatten(1)


def audio_features(inputs: torch.Tensor) -> torch.Tensor:
    """[N, 1, n_mels, frames] log-mel (as the encoder sees it) → [N, 2·n_mels]: per-band mean, then per-band std
    over time; the classic clip-level timbre summary, blind to word order."""
    spec = inputs.float().flatten(1, -2)  # [N, channels·n_mels, frames]
    return torch.cat([spec.mean(dim=-1), spec.std(dim=-1, unbiased=False)], dim=1)


def _stats(values: torch.Tensor, with_mean: bool) -> torch.Tensor:
    """[N, P] → [N, (1) + 1 + len(QUANTILES)]: (mean,) std and quantiles over each row's points."""
    q = torch.quantile(values, torch.tensor(QUANTILES, dtype=values.dtype), dim=1).T
    parts = [values.mean(dim=1, keepdim=True)] if with_mean else []
    return torch.cat([*parts, values.std(dim=1, unbiased=False, keepdim=True), q], dim=1)


def lidar_points(tokens: torch.Tensor) -> torch.Tensor:
    """[N, G, 1 + K, C] point patches (see modalities/point_tokenizer.py) → [N, G·K, C] points in cloud coordinates:
    the neighbour rows moved back by their centre (patches may overlap, so a point can appear twice)."""
    points = tokens[:, :, 1:, :].float().clone()
    points[..., :3] += tokens[:, :, :1, :3].float()
    return points.flatten(1, 2)


def lidar_features(tokens: torch.Tensor) -> torch.Tensor:
    """Point patches → [N, 16]: z std and quantiles, intensity mean, std and quantiles, x/y/z extent (max − min).

    The decoder centres each cloud, so a z mean would be ~0 noise (which standardising would blow up): it is left
    out, while the z quantiles still place the ground and the tops of objects relative to the cloud's centre.
    """
    points = lidar_points(tokens)
    xyz = points[..., :3]
    extent = xyz.amax(dim=1) - xyz.amin(dim=1)
    return torch.cat([_stats(points[..., 2], with_mean=False), _stats(points[..., 3], with_mean=True), extent], dim=1)


RAW_FEATURES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "image": image_features, "audio": audio_features, "lidar": lidar_features,
}


def raw_features(modality: str, inputs: torch.Tensor) -> torch.Tensor:
    """The hand-made features [N, D] of a modality's model-ready eval inputs (LabeledSplit.inputs)."""
    if modality not in RAW_FEATURES:
        raise ValueError(f"no raw-feature baseline for modality {modality!r}; known: {sorted(RAW_FEATURES)}")
    return RAW_FEATURES[modality](inputs)


def raw_feature_knn(modality: str, splits: dict[str, LabeledSplit], cfg: EvalConfig) -> float:
    """kNN top-1 of the raw features, always standardised (their dimensions have different units): same k,
    temperature and bank/query split as the encoder's kNN."""
    return knn_from_features({name: raw_features(modality, s.inputs) for name, s in splits.items()}, splits, cfg,
                             standardize_features=True)

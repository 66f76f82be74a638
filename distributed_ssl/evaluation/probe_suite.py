"""Every label-based and label-free measurement of an encoder from one embedding pass over the eval set.

Embedding is the expensive part (a forward over every eval record, collective under ZeRO-3), so the kNN probe,
the linear probe and the collapse metrics all read the same features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from distributed_ssl.config.schema import EvalConfig
from distributed_ssl.evaluation.collapse import CollapseReport, collapse_report
from distributed_ssl.evaluation.features import embed_all
from distributed_ssl.evaluation.knn_probe import knn_from_features
from distributed_ssl.evaluation.labeled_set import LabeledSplit
from distributed_ssl.evaluation.linear_probe import linear_probe_features


@dataclass(frozen=True)
class ProbeResult:
    knn_top1: float
    linear_top1: float
    collapse: CollapseReport

    def metrics(self) -> dict[str, float]:
        """Flat scalars for MLflow, Ray Train reports and summary.json."""
        return {"knn_top1": self.knn_top1, "linear_top1": self.linear_top1, **self.collapse.metrics()}


def probe_features(feats: dict[str, torch.Tensor], splits: dict[str, LabeledSplit], cfg: EvalConfig,
                   seed: int = 0) -> ProbeResult:
    """kNN and linear top-1 and the collapse report of precomputed features (one tensor per split)."""
    num_classes = max(s.num_classes for s in splits.values())
    linear = linear_probe_features(feats, {k: s.labels for k, s in splits.items()}, num_classes, cfg.linear_l2,
                                   cfg.linear_max_iter, cfg.linear_holdout, seed)
    collapse = collapse_report(torch.cat([feats[k] for k in splits]), cfg.collapse_std_fraction,
                               cfg.collapse_rank_fraction)
    return ProbeResult(knn_from_features(feats, splits, cfg), linear, collapse)


def probe_encoder(embed: Callable[[torch.Tensor], torch.Tensor], splits: dict[str, LabeledSplit], cfg: EvalConfig,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> ProbeResult:
    """Embed every split once (work shared across ranks) and probe; every rank gets the same result."""
    feats = {name: embed_all(embed, s.inputs, cfg.batch_size, device, dtype) for name, s in splits.items()}
    return probe_features(feats, splits, cfg, seed)

"""The kNN probe on `data.eval`: train split as the memory bank and val as queries, or leave-one-out."""

from __future__ import annotations

from collections.abc import Callable

import torch

from distributed_ssl.config.schema import EvalConfig
from distributed_ssl.evaluation.features import embed_all
from distributed_ssl.evaluation.knn import knn_top1
from distributed_ssl.evaluation.labeled_set import LabeledSplit


def knn_from_features(feats: dict[str, torch.Tensor], splits: dict[str, LabeledSplit], cfg: EvalConfig) -> float:
    """kNN top-1 of precomputed features (one tensor per split)."""
    if "train" in splits and "val" in splits:
        bank, query = splits["train"], splits["val"]
        return knn_top1(feats["train"], bank.labels, feats["val"], query.labels,
                        max(bank.num_classes, query.num_classes), cfg.knn_k, cfg.knn_temperature)
    name = next(iter(splits))
    split = splits[name]
    return knn_top1(feats[name], split.labels, feats[name], split.labels, split.num_classes, cfg.knn_k,
                    cfg.knn_temperature, exclude_self=True)


def knn_probe(embed: Callable[[torch.Tensor], torch.Tensor], splits: dict[str, LabeledSplit], cfg: EvalConfig,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    feats = {name: embed_all(embed, s.inputs, cfg.batch_size, device, dtype) for name, s in splits.items()}
    return knn_from_features(feats, splits, cfg)

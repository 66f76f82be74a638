"""The kNN probe on `data.eval`: train split as the memory bank and val as queries, or leave-one-out."""

from __future__ import annotations

from collections.abc import Callable

import torch

from distributed_ssl.config.schema import EvalConfig
from distributed_ssl.evaluation.features import embed_all
from distributed_ssl.evaluation.knn import knn_top1
from distributed_ssl.evaluation.labeled_set import LabeledSplit
from distributed_ssl.evaluation.linear_probe import standardize


def memory_bank(splits: dict[str, LabeledSplit]) -> str:
    """The split the kNN votes from: train of a train/val set, else the one split (leave-one-out)."""
    return "train" if "train" in splits and "val" in splits else next(iter(splits))


def standardized(feats: dict[str, torch.Tensor], bank: str) -> dict[str, torch.Tensor]:
    """Every split's features scaled per dimension with the memory bank's mean and std (no query statistics)."""
    others = [name for name in feats if name != bank]
    scaled = standardize(feats[bank], *(feats[name] for name in others))
    return dict(zip([bank, *others], scaled, strict=True))


def knn_from_features(feats: dict[str, torch.Tensor], splits: dict[str, LabeledSplit], cfg: EvalConfig,
                      standardize_features: bool | None = None) -> float:
    """kNN top-1 of precomputed features (one tensor per split), standardised first unless `eval.knn_standardize`
    (or `standardize_features`, when given) says otherwise."""
    if cfg.knn_standardize if standardize_features is None else standardize_features:
        feats = standardized(feats, memory_bank(splits))
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

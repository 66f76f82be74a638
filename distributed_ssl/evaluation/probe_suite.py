"""Every label-based and label-free measurement of an encoder from one embedding pass over the eval set.

Embedding is the expensive part (a forward over every eval record, collective under ZeRO-3), so the kNN probe,
the linear probe and the collapse metrics all read the same features. Each rank embeds its share of the records
(`embed_all`); the probes on the gathered features run once, on rank 0, and every rank receives the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from distributed_ssl.config.schema import EvalConfig
from distributed_ssl.evaluation.collapse import CollapseReport, collapse_report
from distributed_ssl.evaluation.features import embed_all
from distributed_ssl.evaluation.knn_probe import knn_from_features
from distributed_ssl.evaluation.labeled_set import LabeledSplit
from distributed_ssl.evaluation.linear_probe import linear_probe_features
from distributed_ssl.losses.distributed_gather import world

T = TypeVar("T")


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
    """Embed every split once (work shared across ranks) and probe once (rank 0); every rank gets the result."""
    feats = {name: embed_all(embed, s.inputs, cfg.batch_size, device, dtype) for name, s in splits.items()}
    return on_rank0(lambda: probe_features(feats, splits, cfg, seed))


def on_rank0(compute: Callable[[], T]) -> T:
    """`compute()` on rank 0 only, its result broadcast to every rank (just `compute()` when not distributed).

    For work that every rank would repeat identically (probes on gathered features): the other ranks wait
    instead of competing for the same CPU cores.
    """
    rank, size = world()
    if size == 1:
        return compute()
    box: list[Any] = [None]
    error: Exception | None = None
    if rank == 0:
        try:
            box[0] = (True, compute())
        except Exception as exc:  # every rank raises, instead of the others waiting forever
            error, box[0] = exc, (False, f"on rank 0: {type(exc).__name__}: {exc}")
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    ok, value = box[0]
    if not ok:
        raise RuntimeError(value)
    return value

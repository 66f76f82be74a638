"""Linear probe: a softmax classifier fitted on frozen, standardised features (the other half of the SSL protocol).

kNN reads the geometry of the features as they are; a linear probe asks whether the classes are linearly
separable after any rescaling. One fixed recipe (train-split statistics, zero init, full-batch L-BFGS with an L2
penalty) keeps the number deterministic and comparable between runs, methods and modalities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distributed_ssl.data.splits import assign_splits


def standardize(train: torch.Tensor, *others: torch.Tensor, eps: float = 1e-6) -> list[torch.Tensor]:
    """Scale every feature to zero mean and unit variance with the train features' statistics only."""
    mean = train.mean(dim=0, keepdim=True)
    std = train.std(dim=0, keepdim=True).clamp_min(eps)
    return [(x - mean) / std for x in (train, *others)]


def holdout_split(labels: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices): a stratified, seeded split for eval sets that have one split only."""
    is_val = torch.from_numpy(assign_splits(labels.tolist(), fraction, seed))
    return (~is_val).nonzero().squeeze(1), is_val.nonzero().squeeze(1)


def fit_linear(features: torch.Tensor, labels: torch.Tensor, num_classes: int, l2: float = 1e-3,
               max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [D, C] and bias [C] minimising mean cross-entropy + l2 · ||W||²; convex, so zero init is fine."""
    x, y = features.double(), labels.long()
    weight = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def linear_top1(train_feats: torch.Tensor, train_labels: torch.Tensor, val_feats: torch.Tensor,
                val_labels: torch.Tensor, num_classes: int, l2: float = 1e-3, max_iter: int = 100) -> float:
    """Top-1 accuracy on the val features of a linear classifier fitted on the train features."""
    train_x, val_x = standardize(train_feats.float(), val_feats.float())
    weight, bias = fit_linear(train_x, train_labels, num_classes, l2, max_iter)
    pred = (val_x.double() @ weight + bias).argmax(dim=1)
    return float((pred == val_labels).float().mean()) if len(val_labels) else 0.0


def linear_probe_features(feats: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], num_classes: int,
                          l2: float = 1e-3, max_iter: int = 100, holdout: float = 0.2, seed: int = 0) -> float:
    """`linear_top1` for features of a train/val eval set, or of one split with a seeded stratified holdout."""
    if "train" in feats and "val" in feats:
        return linear_top1(feats["train"], labels["train"], feats["val"], labels["val"], num_classes, l2, max_iter)
    name = next(iter(feats))
    train_idx, val_idx = holdout_split(labels[name], holdout, seed)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"eval split {name!r} has {len(labels[name])} records: too few for a linear-probe holdout")
    x, y = feats[name], labels[name]
    return linear_top1(x[train_idx], y[train_idx], x[val_idx], y[val_idx], num_classes, l2, max_iter)

"""Shard folders may be a single split or a parent of `train/` and `val/` splits."""

from __future__ import annotations

import numpy as np

from distributed_ssl.data.manifest import MANIFEST_NAME
from distributed_ssl.util import storage

SPLITS = ("train", "val")


def split_dirs(uri: str) -> dict[str, str]:
    """`{"train": uri/train, "val": uri/val}` when `uri` is a parent of splits, else `{"all": uri}`."""
    fs, root = storage.resolve(uri)
    found = {s: storage.join(uri, s) for s in SPLITS
             if storage.exists(fs, storage.join(root, s, MANIFEST_NAME))}
    return found or {"all": uri}


def assign_splits(labels: list[int | None], val_fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of validation records, stratified by label so every class appears in both splits."""
    n = len(labels)
    is_val = np.zeros(n, dtype=bool)
    if val_fraction <= 0 or n == 0:
        return is_val
    rng = np.random.default_rng(seed)
    groups: dict[object, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    for members in groups.values():
        members = rng.permutation(members)
        k = int(round(len(members) * val_fraction))
        if len(members) > 1:
            k = min(max(k, 1), len(members) - 1)
        is_val[members[:k]] = True
    return is_val

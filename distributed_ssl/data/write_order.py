"""The order converters and sample writers write records in: seeded random, so every shard mixes the classes."""

from __future__ import annotations

import numpy as np

ORDER_STREAM = 7  # a random stream of its own, apart from the split assignment's stream of the same seed


def mixed_order(count: int, seed: int = 0) -> list[int]:
    """Indices `0..count-1` in a seeded random order (the same order for the same seed).

    Records are written in this order rather than class by class (the order a folder walk finds them in). A streamed
    local shuffle (`data.shuffle=local`: random shard and block order, a shuffle buffer in each worker) mixes only
    within the shards a worker is reading, so from class-sorted shards a batch of 128 held 8.8 of 10 classes with one
    class at 21 %, and SimCLR took same-class photos as negatives: on the photo-region set, 176 steps ended at kNN
    0.790 against 0.830 with a global shuffle (random init 0.808).
    """
    return np.random.default_rng([seed, ORDER_STREAM]).permutation(count).tolist()

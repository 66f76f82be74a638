"""Spherical mini-batch k-means in torch: clusters of L2-normalised embeddings, compared by cosine similarity.

Mini-batch updates (Sculley, 2010) touch a few thousand points per step, so a million 256-d embeddings cluster
in minutes on a laptop; the final assignment pass is a chunked matrix product. Seeded, so results repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F


@dataclass
class KMeansResult:
    centroids: torch.Tensor  # [k, D], unit norm
    assignments: torch.Tensor  # int64 [N]: index of the nearest centroid
    distances: torch.Tensor  # float [N]: cosine distance (1 - cos) to that centroid


def assign(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid and cosine distance for each (unit-norm) row of `x`, in chunks to bound memory."""
    labels, dists = [], []
    for i in range(0, x.shape[0], chunk):
        sim = x[i:i + chunk] @ centroids.T
        best, idx = sim.max(dim=1)
        labels.append(idx)
        dists.append(1.0 - best)
    return torch.cat(labels), torch.cat(dists).clamp_min(0.0)


def _kmeans_plus_plus(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding with cosine distance: each new centre drawn with probability ∝ distance² to the nearest."""
    n = x.shape[0]
    centres = [x[torch.randint(n, (1,), generator=gen)].squeeze(0)]
    nearest = (1.0 - x @ centres[0]).clamp_min(0.0)
    for _ in range(1, k):
        weights = nearest.square()
        total = float(weights.sum())
        idx = torch.multinomial(weights / total, 1, generator=gen) if total > 0 else torch.randint(n, (1,),
                                                                                                    generator=gen)
        centres.append(x[idx].squeeze(0))
        nearest = torch.minimum(nearest, (1.0 - x @ centres[-1]).clamp_min(0.0))
    return torch.stack(centres)


def spherical_kmeans(embeddings: torch.Tensor, k: int, init: Literal["kmeans++", "random"] = "kmeans++",
                     batch_size: int = 4096, iters: int = 300, seed: int = 0,
                     init_sample: int = 20000) -> KMeansResult:
    """Cluster the rows of `embeddings` [N, D] into `k` groups by cosine similarity.

    `init_sample` bounds the points k-means++ sees (seeding is sequential in k); `iters` mini-batches of
    `batch_size` then move each centre by 1/count of the points it has absorbed, re-normalised to the sphere.
    Centres that attract no point during training are re-seeded at a random batch point.
    """
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {tuple(embeddings.shape)}")
    n = embeddings.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must lie in [1, number of embeddings={n}]")
    if init not in ("kmeans++", "random"):
        raise ValueError(f"init={init!r}: expected 'kmeans++' or 'random'")
    gen = torch.Generator().manual_seed(seed)
    x = F.normalize(embeddings.float(), dim=1)
    sample = x[torch.randperm(n, generator=gen)[:max(init_sample, k)]]
    if init == "kmeans++":
        centroids = _kmeans_plus_plus(sample, k, gen)
    else:
        centroids = sample[torch.randperm(sample.shape[0], generator=gen)[:k]].clone()
    counts = torch.zeros(k)
    batch_size = min(batch_size, n)
    _minibatch_steps(x, centroids, counts, iters, batch_size, gen)
    dead = (counts == 0).nonzero().flatten()
    if len(dead):
        centroids[dead] = x[torch.randint(n, (len(dead),), generator=gen)]
    labels, dists = assign(x, centroids)
    return KMeansResult(centroids, labels, dists)


def _minibatch_steps(x: torch.Tensor, centroids: torch.Tensor, counts: torch.Tensor, iters: int, batch_size: int,
                     gen: torch.Generator) -> None:
    """Mini-batch updates in place, on one thread: each step is too small for threads to pay off, and on a busy
    machine OpenMP's scatter-add (`index_add_`) runs ~100× slower with 2 threads than with 1."""
    n, k = x.shape[0], centroids.shape[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(iters):
            batch = x[torch.randint(n, (batch_size,), generator=gen)]
            idx = (batch @ centroids.T).argmax(dim=1)
            batch_counts = torch.bincount(idx, minlength=k).float()
            sums = torch.zeros_like(centroids).index_add_(0, idx, batch)
            counts += batch_counts
            hit = batch_counts > 0
            # Per-centre learning rate 1/count: the centre is the running mean of every point it has absorbed.
            rate = (batch_counts[hit] / counts[hit]).unsqueeze(1)
            means = sums[hit] / batch_counts[hit].unsqueeze(1)
            centroids[hit] = F.normalize((1 - rate) * centroids[hit] + rate * means, dim=1)
    finally:
        torch.set_num_threads(threads)

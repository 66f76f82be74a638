"""Curation logic without Ray: k-means recovers planted clusters, SemDedup finds planted duplicates, every
strategy keeps exactly the asked fraction, and the kept-ids manifest drives step planning."""

from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from distributed_ssl.curation.kmeans import spherical_kmeans
from distributed_ssl.curation.semdedup import redundancy_scores, semdedup_keep
from distributed_ssl.curation.strategies import (
    balanced_keep,
    balanced_quotas,
    num_to_keep,
    prototype_keep,
    random_keep,
)


def planted(k: int = 6, per: int = 150, dim: int = 32, noise: float = 0.15, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(k, dim, generator=gen), dim=1)
    truth = torch.arange(k).repeat_interleave(per)
    return centres[truth] + noise * torch.randn(len(truth), dim, generator=gen), truth


def pure_partition(truth: torch.Tensor, found: torch.Tensor) -> bool:
    """Each planted cluster maps to exactly one found cluster and vice versa."""
    pairs = set(zip(truth.tolist(), found.tolist(), strict=True))
    return len(pairs) == len(set(truth.tolist())) == len({f for _, f in pairs})


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_kmeans_recovers_planted_clusters(init):
    x, truth = planted()
    result = spherical_kmeans(x, 6, init=init, iters=100, batch_size=256, seed=1)
    assert pure_partition(truth, result.assignments)
    assert torch.allclose(result.centroids.norm(dim=1), torch.ones(6), atol=1e-5)
    cos = (F.normalize(x, dim=1) * result.centroids[result.assignments]).sum(dim=1)
    assert torch.allclose(result.distances, 1 - cos, atol=1e-5)


def test_kmeans_is_seeded_and_checks_k():
    x, _ = planted(k=3, per=50)
    a, b = (spherical_kmeans(x, 3, iters=20, seed=7) for _ in range(2))
    assert torch.equal(a.assignments, b.assignments) and torch.equal(a.centroids, b.centroids)
    with pytest.raises(ValueError, match="k=151"):
        spherical_kmeans(x, 151)


def test_semdedup_removes_planted_duplicates_and_nothing_else():
    x, _ = planted(k=5, per=80, dim=64, noise=0.5)
    gen = torch.Generator().manual_seed(3)
    originals = torch.randperm(len(x), generator=gen)[:40]
    exact = x[originals[:20]].clone()
    augmented = x[originals[20:]] + 0.01 * torch.randn(20, 64, generator=gen)  # a slightly jittered copy
    data = torch.cat([x, exact, augmented])
    clusters = spherical_kmeans(data, 5, iters=100, seed=0)
    redundancy = redundancy_scores(data, clusters.assignments, clusters.distances, chunk=64)
    kept = set(semdedup_keep(redundancy, threshold=0.98, num_keep=None).tolist())
    copies = {len(x) + i: int(o) for i, o in enumerate(originals)}
    dropped = set(range(len(data))) - kept
    assert len(dropped) == 40
    for copy, original in copies.items():
        assert (copy in kept) != (original in kept), "exactly one of each duplicate pair is kept"
    assert dropped <= set(copies) | set(copies.values())


@pytest.mark.parametrize("total,keep", [(1000, 0.7), (997, 0.33), (10, 0.05), (5, 1.0)])
def test_every_strategy_keeps_the_exact_fraction(total, keep):
    x, _ = planted(k=4, per=total // 4 + 1)
    x = x[:total]
    n = num_to_keep(total, keep)
    assert n == max(1, round(keep * total))
    clusters = spherical_kmeans(x, 4, iters=30, seed=0)
    redundancy = redundancy_scores(x, clusters.assignments, clusters.distances)
    selections = {
        "prototype": prototype_keep(clusters.distances, n, "hard"),
        "balanced": balanced_keep(clusters.assignments, n, seed=0),
        "random": random_keep(total, n, seed=0),
        "semdedup": semdedup_keep(redundancy, None, n),
    }
    for name, kept in selections.items():
        assert len(kept) == n and len(set(kept.tolist())) == n, name
        assert int(kept.min()) >= 0 and int(kept.max()) < total, name


def test_prototype_keeps_hard_or_easy_records():
    distances = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.7])
    assert prototype_keep(distances, 2, "hard").tolist() == [2, 4]
    assert prototype_keep(distances, 2, "easy").tolist() == [1, 3]


def test_balanced_sampling_flattens_a_heavy_tail():
    sizes = torch.tensor([800, 100, 50, 30, 20])
    quotas = balanced_quotas(sizes, 300)
    assert int(quotas.sum()) == 300 and (quotas <= sizes).all()
    assert quotas.tolist() == [100, 100, 50, 30, 20]  # small clusters whole, the rest split evenly
    assignments = torch.arange(5).repeat_interleave(sizes)
    kept = balanced_keep(assignments, 300, seed=0)
    assert Counter(assignments[kept].tolist()) == {0: 100, 1: 100, 2: 50, 3: 30, 4: 20}
    assert int(balanced_quotas(torch.tensor([5, 5, 5]), 2).sum()) == 2

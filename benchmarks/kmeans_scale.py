"""Spherical mini-batch k-means at scale: 1,000,000 × 256 synthetic embeddings on this machine's CPU cores.

The data has planted clusters (unit-norm centres plus Gaussian noise), so the table also shows whether the
clustering found structure: the mean cosine distance of each point to its centroid, and the fraction of points
whose found cluster holds a majority of their planted cluster (purity).

    python benchmarks/kmeans_scale.py [--n 1000000] [--dim 256] [--k 100,1000] [--iters 300]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from distributed_ssl.curation.kmeans import spherical_kmeans


def synthetic(n: int, dim: int, planted: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(planted, dim, generator=gen), dim=1)
    truth = torch.randint(planted, (n,), generator=gen)
    x = torch.randn(n, dim, generator=gen).mul_(0.6 / dim ** 0.5).add_(centres[truth])
    return x, truth


def purity(truth: torch.Tensor, found: torch.Tensor, k: int) -> float:
    """Share of points in the majority planted cluster of their found cluster."""
    planted = int(truth.max()) + 1
    table = torch.zeros(k, planted, dtype=torch.long).index_put_((found, truth), torch.ones_like(found),
                                                                 accumulate=True)
    return float(table.max(dim=1).values.sum()) / len(truth)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--k", default="100,1000", help="comma-separated cluster counts")
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--init", default="kmeans++", choices=["kmeans++", "random"])
    args = p.parse_args()
    x, truth = synthetic(args.n, args.dim, planted=100)
    print(f"{args.n:,} × {args.dim} float32 embeddings ({x.numel() * 4 / 2**30:.2f} GiB), "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, 100 planted clusters")
    rows = []
    for k in (int(v) for v in args.k.split(",")):
        start = time.perf_counter()
        result = spherical_kmeans(x, k, init=args.init, batch_size=args.batch_size, iters=args.iters, seed=0)
        seconds = time.perf_counter() - start
        rows.append((k, args.init, args.iters, args.batch_size, seconds, float(result.distances.mean()),
                     purity(truth, result.assignments, k)))
    print("| k | init | mini-batch steps | batch | seconds | mean cos distance | purity |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for k, init, iters, batch, seconds, dist, pur in rows:
        print(f"| {k} | {init} | {iters} | {batch} | {seconds:.1f} | {dist:.4f} | {pur:.3f} |")


if __name__ == "__main__":
    main()

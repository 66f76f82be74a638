"""Ingest throughput: our Ray Data pipeline vs a plain torch DataLoader(num_workers=2).

Both read the same Parquet shards and run the same decode + SimCLR augmentations (`make_views_batch`) on whole
batches; the only difference is who schedules the work. Prints a table with the baseline ratio.

    python benchmarks/ingest.py [--data data/digits/train] [--epochs 3] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import time

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset

from distributed_ssl.config import load_config
from distributed_ssl.data.manifest import shard_paths
from distributed_ssl.methods.registry import view_spec_for
from distributed_ssl.modalities.preprocess import make_views_batch
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.modalities.train_dataset import build_train_dataset
from distributed_ssl.util import storage


class RecordBatches(Dataset):
    """Batches of raw records from the shards, shuffled per epoch by the sampler."""

    def __init__(self, uri: str, batch_size: int):
        fs, _ = storage.resolve(uri)
        table = pa.concat_tables([pq.read_table(p, filesystem=fs, columns=["id", "image"])
                                  for p in shard_paths(uri)])
        self.ids = table.column("id").to_pylist()
        self.images = table.column("image").to_pylist()
        self.batch_size = batch_size
        self.order = torch.randperm(len(self.ids))

    def __len__(self) -> int:
        return len(self.ids) // self.batch_size

    def __getitem__(self, i: int) -> dict:
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size].tolist()
        return {"id": [self.ids[j] for j in idx], "image": [self.images[j] for j in idx]}


def bench_dataloader(uri: str, cfg, epochs: int, batch_size: int) -> float:
    modality, spec = build_modality(cfg), view_spec_for(cfg)
    ds = RecordBatches(uri, batch_size)
    loader = DataLoader(ds, batch_size=None, shuffle=True, num_workers=2, persistent_workers=True,
                        collate_fn=lambda b: make_views_batch(b, modality, spec))
    next(iter(loader))  # start the workers outside the timing
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            n += len(batch["view_0"])
    return n / (time.perf_counter() - t0)


def bench_ray(cfg, epochs: int, batch_size: int) -> float:
    ds = build_train_dataset(cfg, view_spec_for(cfg))
    ds.take_batch(8)  # start-up outside the timing
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in ds.iter_torch_batches(batch_size=batch_size, drop_last=True):
            n += len(batch["view_0"])
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/digits/train")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=32)
    args = p.parse_args()
    import ray

    cfg = load_config(None, [f"data.train={args.data}", f"modality.image_size={args.image_size}",
                             "method.name=simclr", "data.preprocess_cpus=1"])
    ray.init(address="local", num_cpus=4, object_store_memory=512 * 1024**2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    rows = [("torch DataLoader(num_workers=2) [baseline]", bench_dataloader(args.data, cfg, args.epochs,
                                                                            args.batch_size))]
    rows.append(("Ray Data pipeline (dssl)", bench_ray(cfg, args.epochs, args.batch_size)))
    ray.shutdown()
    base = rows[0][1]
    print(f"\ningest: {args.epochs} epochs of {args.data}, SimCLR views {args.image_size}px, batch {args.batch_size}")
    print(f"| {'pipeline':44s} | {'records/s':>10s} | {'vs baseline':>11s} |")
    print(f"|{'-' * 46}|{'-' * 12}|{'-' * 13}|")
    for name, rate in rows:
        print(f"| {name:44s} | {rate:10.1f} | {rate / base:10.2f}x |")


if __name__ == "__main__":
    main()

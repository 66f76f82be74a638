"""Ingest throughput at scale: our Ray Data pipeline vs two torch DataLoader(num_workers=2) pipelines.

With `--records N` (the default, 20000) N seeded JPEGs (160x128: smooth noise, gradients and shapes, in class
sub-folders) are written to a work folder and converted with `dssl data convert image` into Parquet shards on disk.
`data.cache_raw_mb` is set below the shards' size, so the Ray pipeline takes the streaming branch (shards read
from storage every epoch, as on a cluster), and the script checks that it did. `--records 0 --data DIR` times an
existing shard folder instead.

Timed, over full epochs, in one run, all with the same decode and SimCLR views at `--image-size`:

- Ray Data pipeline (dssl): `build_train_dataset(cfg, view_spec_for(cfg))` then `iter_torch_batches`, with the
  trainer's local shuffle buffer;
- torch DataLoader(num_workers=2) [baseline]: the same batched decode + views (`make_views_batch`) on batches of
  records held in memory, shuffled each epoch;
- a per-sample PIL + numpy DataLoader(num_workers=2): each JPEG decoded with PIL, random resized crop, flip,
  colour jitter, grayscale and blur per sample, default collate (what one writes by hand).

    python benchmarks/ingest.py [--records 20000] [--epochs 2] [--batch-size 64] [--image-size 32]
                                [--workdir /tmp/dssl-ingest] [--out benchmarks/results/ingest_cpu.txt]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset

from distributed_ssl.config import load_config
from distributed_ssl.data.manifest import load_manifest, shard_paths
from distributed_ssl.data.train_records import fits_in_object_store_cache
from distributed_ssl.methods.registry import view_spec_for
from distributed_ssl.modalities.preprocess import make_views_batch
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.modalities.train_dataset import build_train_dataset
from distributed_ssl.util import storage

IMAGE_W, IMAGE_H, CLASSES = 160, 128, 10


# --- the data set -------------------------------------------------------------------------------------------------

def synthetic_jpeg(rng: np.random.Generator, label: int) -> bytes:
    """A 160x128 JPEG: smooth colour noise over a gradient, plus a few filled shapes (class-dependent hue)."""
    from PIL import Image, ImageDraw

    coarse = rng.random((IMAGE_H // 16, IMAGE_W // 16, 3)).astype(np.float32)
    noise = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((IMAGE_W, IMAGE_H),
                                                                                Image.Resampling.BICUBIC))
    yy, xx = np.mgrid[0:IMAGE_H, 0:IMAGE_W].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    grad = (np.cos(angle) * xx / IMAGE_W + np.sin(angle) * yy / IMAGE_H + 1) / 2
    tint = np.array([(label * 0.1) % 1, 0.5, 1 - (label * 0.1) % 1], np.float32)
    pixels = 0.55 * noise / 255 + 0.45 * grad[..., None] * tint
    img = Image.fromarray((pixels.clip(0, 1) * 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 5))):
        x0, y0 = int(rng.integers(0, IMAGE_W - 20)), int(rng.integers(0, IMAGE_H - 20))
        x1, y1 = x0 + int(rng.integers(10, 60)), y0 + int(rng.integers(10, 50))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(rng.integers(80, 95)))
    return buf.getvalue()


def make_shards(records: int, workdir: Path, seed: int = 0) -> Path:
    """`records` JPEGs in `workdir/jpeg/<class>/`, converted by `dssl data convert image` to `workdir/shards`;
    both are reused when a previous run made the same number."""
    src, out = workdir / f"jpeg-{records}", workdir / f"shards-{records}"
    train = out / "train"
    if (train / "manifest.json").exists() and load_manifest(str(train)).num_records == records:
        return train
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    for i in range(records):
        label = i % CLASSES
        folder = src / f"class_{label}"
        if i < CLASSES:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:06d}.jpg").write_bytes(synthetic_jpeg(rng, label))
    t1 = time.perf_counter()
    cmd = [sys.executable, "-m", "distributed_ssl.cli", "data", "convert", "image", str(src), str(out),
           "--val-fraction", "0", "--shard-size", "1024"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    print(f"made {records} JPEGs in {t1 - t0:.0f} s, converted to shards in {time.perf_counter() - t1:.0f} s",
          flush=True)
    return train


# --- (b) the batched DataLoader baseline and (c) the per-sample one ----------------------------------------------

def load_records(uri: str) -> tuple[list[str], list[bytes]]:
    fs, _ = storage.resolve(uri)
    table = pa.concat_tables([pq.read_table(p, filesystem=fs, columns=["id", "image"]) for p in shard_paths(uri)])
    return table.column("id").to_pylist(), table.column("image").to_pylist()


class PerSampleViews(Dataset):
    """Two SimCLR views of one record, decoded with PIL and augmented with numpy, one sample at a time."""

    def __init__(self, images: list[bytes], size: int, cfg, mean, std):
        self.images, self.size, self.cfg = images, size, cfg
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def _view(self, img, rng: np.random.Generator) -> np.ndarray:
        from PIL import Image, ImageFilter

        c, (w, h) = self.cfg, img.size
        for _ in range(10):  # torchvision's RandomResizedCrop
            area = w * h * rng.uniform(c.crop_scale_min, c.crop_scale_max)
            ratio = math.exp(rng.uniform(math.log(c.crop_ratio_min), math.log(c.crop_ratio_max)))
            cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
            if 0 < cw <= w and 0 < ch <= h:
                break
        else:
            cw, ch = min(w, h), min(w, h)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        view = img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
        if rng.random() < c.flip_prob:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if rng.random() < c.blur_prob:
            view = view.filter(ImageFilter.GaussianBlur(rng.uniform(c.blur_sigma_min, c.blur_sigma_max)))
        x = np.asarray(view, np.float32) / 255.0  # [S, S, 3]
        luma = np.array([0.299, 0.587, 0.114], np.float32)
        if rng.random() < c.jitter_prob:
            s = 0.8 * c.jitter_strength
            x = np.clip(x * rng.uniform(max(0, 1 - s), 1 + s), 0, 1)
            mean = (x @ luma).mean()
            x = np.clip((x - mean) * rng.uniform(max(0, 1 - s), 1 + s) + mean, 0, 1)
            grey = (x @ luma)[..., None]
            x = np.clip((x - grey) * rng.uniform(max(0, 1 - s), 1 + s) + grey, 0, 1)
        if rng.random() < c.grayscale_prob:
            x = np.repeat((x @ luma)[..., None], 3, axis=2)
        return (x.transpose(2, 0, 1) - self.mean) / self.std

    def __getitem__(self, i: int) -> dict:
        from PIL import Image

        rng = np.random.default_rng()
        with Image.open(io.BytesIO(self.images[i])) as img:
            img = img.convert("RGB")
            return {"view_0": torch.from_numpy(self._view(img, rng)), "view_1": torch.from_numpy(self._view(img, rng))}


def time_loader(loader: DataLoader, epochs: int, on_epoch=None) -> tuple[float, list[float]]:
    next(iter(loader))  # start the workers outside the timing
    n, seconds = 0, []
    for epoch in range(epochs):
        if on_epoch is not None:
            on_epoch(epoch + 1)
        t0 = time.perf_counter()
        for batch in loader:
            n += len(batch["view_0"])
        seconds.append(time.perf_counter() - t0)
    return n / sum(seconds), seconds


def bench_batched_shuffled(ids, images, cfg, epochs: int, batch_size: int) -> tuple[float, list[float]]:
    """Batches of records drawn by a shuffling sampler (a fresh order each epoch, in every worker)."""
    modality, spec = build_modality(cfg), view_spec_for(cfg)

    class Records(Dataset):
        def __len__(self) -> int:
            return len(ids)

        def __getitem__(self, idx):
            return idx

    def collate(idx: list[int]) -> dict:
        batch = {"id": np.array([ids[j] for j in idx], dtype=object),
                 "image": np.array([images[j] for j in idx], dtype=object)}
        return make_views_batch(batch, modality, spec)

    # A BatchSampler hands each worker whole batches of indices; __getitem__ on indices is trivial.
    loader = DataLoader(Records(), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=2,
                        persistent_workers=True, collate_fn=collate)
    return time_loader(loader, epochs)


def bench_per_sample(images, cfg, epochs: int, batch_size: int) -> tuple[float, list[float]]:
    ds = PerSampleViews(images, cfg.modality.image_size, cfg.augment, cfg.modality.mean, cfg.modality.std)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=2,
                        persistent_workers=True)
    return time_loader(loader, epochs)


# --- (a) ours -----------------------------------------------------------------------------------------------------

def bench_ray(cfg, epochs: int, batch_size: int) -> tuple[float, list[float], list[float]]:
    ds = build_train_dataset(cfg, view_spec_for(cfg))
    ds.take_batch(8)  # start-up outside the timing
    shuffle = cfg.data.local_shuffle_buffer if cfg.data.shuffle == "local" else None
    n, seconds, first = 0, [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for i, batch in enumerate(ds.iter_torch_batches(batch_size=batch_size, drop_last=True,
                                                        local_shuffle_buffer_size=shuffle)):
            if i == 0:
                first.append(time.perf_counter() - t0)
            n += len(batch["view_0"])
        seconds.append(time.perf_counter() - t0)
    return n / sum(seconds), seconds, first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=20000, help="JPEGs to make and convert; 0: use --data as is")
    p.add_argument("--data", default="data/digits/train", help="an existing shard folder (with --records 0)")
    p.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "dssl-ingest"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--ray-cpus", type=int, default=2, help="logical CPUs of the local Ray (the machine's cores)")
    p.add_argument("--set", nargs="*", default=[], help="extra config overrides for our pipeline (key=value)")
    p.add_argument("--only", nargs="*", default=["ray", "batched", "per-sample"])
    p.add_argument("--out", default=None, help="also write the table here, e.g. benchmarks/results/ingest_cpu.txt")
    args = p.parse_args()
    import ray

    data = str(make_shards(args.records, Path(args.workdir))) if args.records else args.data
    cache_mb = ["data.cache_raw_mb=1"] if args.records else []  # well under the shards: the streaming branch
    cfg = load_config(None, [f"data.train={data}", f"modality.image_size={args.image_size}", "method.name=simclr",
                             *cache_mb, *args.set])
    manifest = load_manifest(data)
    shard_mb = sum(s.bytes for s in manifest.shards) / 2**20
    branch = "object-store cache" if fits_in_object_store_cache(cfg, manifest) else "streaming (read from storage)"
    if args.records:
        assert branch.startswith("streaming"), f"{shard_mb:.0f} MB of shards fit data.cache_raw_mb"
    print(f"{manifest.num_records} records in {len(manifest.shards)} shards, {shard_mb:.1f} MB; "
          f"data.cache_raw_mb={cfg.data.cache_raw_mb}: {branch} branch", flush=True)

    rows: list[tuple[str, float, list[float], str]] = []
    if {"batched", "per-sample"} & set(args.only):
        ids, images = load_records(data)
    if "batched" in args.only:
        rate, secs = bench_batched_shuffled(ids, images, cfg, args.epochs, args.batch_size)
        rows.append(("torch DataLoader(num_workers=2), batched [baseline]", rate, secs, ""))
        print(rows[-1], flush=True)
    if "per-sample" in args.only:
        rate, secs = bench_per_sample(images, cfg, args.epochs, args.batch_size)
        rows.append(("torch DataLoader(num_workers=2), per-sample PIL", rate, secs, ""))
        print(rows[-1], flush=True)
    if "ray" in args.only:
        ray.init(address="local", num_cpus=args.ray_cpus, object_store_memory=512 * 1024**2,
                 include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        rate, secs, first = bench_ray(cfg, args.epochs, args.batch_size)
        ray.shutdown()
        rows.insert(0, ("Ray Data pipeline (dssl)", rate, secs,
                        "first batch " + ", ".join(f"{s:.1f}" for s in first) + " s"))
        print(rows[0], flush=True)

    base = next((r[1] for r in rows if "[baseline]" in r[0]), rows[0][1])
    lines = [f"ingest: {args.epochs} full epochs of {manifest.num_records} records ({len(manifest.shards)} shards, "
             f"{shard_mb:.0f} MB, {branch} branch), SimCLR views {args.image_size}px, batch {args.batch_size}, "
             f"{os.cpu_count()} CPU cores, Ray num_cpus={args.ray_cpus}, data.preprocess_cpus="
             f"{cfg.data.preprocess_cpus}, data.preprocess_batch_size={cfg.data.preprocess_batch_size}"
             + (f", overrides {' '.join(args.set)}" if args.set else ""),
             f"| {'pipeline':52s} | {'records/s':>10s} | {'vs baseline':>11s} | {'epoch seconds':>22s} | notes",
             f"|{'-' * 54}|{'-' * 12}|{'-' * 13}|{'-' * 24}|------"]
    for name, rate, secs, note in rows:
        lines.append(f"| {name:52s} | {rate:10.1f} | {rate / base:10.2f}x | "
                     f"{', '.join(f'{s:.1f}' for s in secs):>22s} | {note}")
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()

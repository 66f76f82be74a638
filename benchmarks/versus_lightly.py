"""SimCLR head to head at equal wall-clock: `dssl train` against lightly's recipe in a plain PyTorch loop.

Both sides train the same ViT (patch 4 on 32 px, width 192, depth 4, 3 heads) on the photo-region set
(`dssl data sample image DIR --set photos`: train and val crops from disjoint regions of each photograph), with a
global batch of 128 and AdamW at 1e-3, and both are probed with the project's kNN (k = 20, val against train) at
each wall-clock budget. The clock of each side starts when its process starts, so start-up counts on both sides.

- **peer** (what a user writes with lightly): lightly's `SimCLRTransform` defaults (random resized crop from 8 %,
  horizontal flip 0.5, colour jitter 0.8/0.8/0.8/0.2 with p 0.8, grey-scale 0.2, Gaussian blur p 0.5 with sigma in
  [0.1, 2], ImageNet normalisation), its `SimCLRProjectionHead` (192 -> 2048 -> BN -> ReLU -> 128) and `NTXentLoss`
  (temperature 0.5; the project's InfoNCELoss computes the same loss), fed by `DataLoader(num_workers=2)` with
  per-sample PIL transforms. lightly itself imports torchvision, whose PyPI build does not load beside the CPU torch this project pins, so these pieces are written
  here after lightly's definitions; the probe pauses its clock.
- **dssl**: `dssl train jobs/configs/image_simclr_photos.yaml` (2 Ray Train workers x 64, DeepSpeed ZeRO-2) with the
  same model and optimizer (AdamW at a constant 1e-3 as the peer's: no warm-up, `optim.min_lr` = `optim.lr`), probing every `--probe-every` epochs inside its clock (kNN and the linear probe); the
  kNN at a budget is the last probe it logged to MLflow before the budget. The run is stopped once a probe past the
  largest budget is logged.

    python benchmarks/versus_lightly.py [--budgets 300,600,900] [--out benchmarks/results/versus_lightly_cpu.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from PIL import Image, ImageEnhance, ImageFilter  # noqa: E402
from torch import nn  # noqa: E402

from distributed_ssl.cli import main as dssl  # noqa: E402
from distributed_ssl.config import load_config  # noqa: E402
from distributed_ssl.data.image_io import decode_image  # noqa: E402
from distributed_ssl.data.manifest import shard_paths  # noqa: E402
from distributed_ssl.evaluation.knn_probe import knn_probe  # noqa: E402
from distributed_ssl.evaluation.labeled_set import load_labeled  # noqa: E402
from distributed_ssl.losses.info_nce_loss import InfoNCELoss  # noqa: E402
from distributed_ssl.methods.registry import build_encoder_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "jobs" / "configs" / "image_simclr_photos.yaml"
PEER_LR = 1e-3  # AdamW's rate on both sides, constant: dssl's cosine schedule is flattened to it (min_lr = lr)
MODEL = ["model.patch_size=4", "model.dim=192", "model.depth=4", "model.heads=3", f"optim.lr={PEER_LR}"]
BATCH = 128
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# --- the peer: lightly's SimCLR pieces ---------------------------------------------------------------------------

def random_resized_crop(image: Image.Image, size: int, rng: np.random.Generator,
                        scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)
                        ) -> Image.Image:
    """torchvision's RandomResizedCrop: ten tries at an area and aspect ratio, else the central crop."""
    width, height = image.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return image.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))


def color_jitter(image: Image.Image, rng: np.random.Generator, strength: float = 1.0) -> Image.Image:
    """torchvision's ColorJitter(0.8s, 0.8s, 0.8s, 0.2s): the four changes in a random order."""
    def hue(img: Image.Image) -> Image.Image:
        h, s, v = img.convert("HSV").split()
        shift = int(rng.uniform(-0.2 * strength, 0.2 * strength) * 255)
        h = h.point(lambda x: (x + shift) % 256)
        return Image.merge("HSV", (h, s, v)).convert("RGB")

    changes = [lambda img: ImageEnhance.Brightness(img).enhance(rng.uniform(1 - 0.8 * strength, 1 + 0.8 * strength)),
               lambda img: ImageEnhance.Contrast(img).enhance(rng.uniform(1 - 0.8 * strength, 1 + 0.8 * strength)),
               lambda img: ImageEnhance.Color(img).enhance(rng.uniform(1 - 0.8 * strength, 1 + 0.8 * strength)),
               hue]
    for index in rng.permutation(4):
        image = changes[index](image)
    return image


def simclr_view(image: Image.Image, rng: np.random.Generator, size: int = 32) -> torch.Tensor:
    """One view as lightly's SimCLRTransform makes it (defaults; input_size = the stored 32 px)."""
    view = random_resized_crop(image, size, rng)
    if rng.random() < 0.5:
        view = view.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.8:
        view = color_jitter(view, rng)
    if rng.random() < 0.2:
        view = view.convert("L").convert("RGB")
    if rng.random() < 0.5:
        view = view.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.1, 2.0)))
    pixels = torch.from_numpy(np.asarray(view, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (pixels - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


class PhotoViews(torch.utils.data.Dataset):
    """The train split's encoded images; each item is two fresh views of one image."""

    def __init__(self, train_dir: Path):
        self.images = [blob for path in shard_paths(str(train_dir))
                       for blob in pq.read_table(path, columns=["image"])["image"].to_pylist()]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng()  # fresh entropy in every DataLoader worker
        image = Image.fromarray(decode_image(self.images[index], "RGB", f"record {index}"))
        return simclr_view(image, rng), simclr_view(image, rng)


class ProjectionHead(nn.Module):
    """lightly's SimCLRProjectionHead (SimCLR v1): Linear, BatchNorm, ReLU, Linear."""

    def __init__(self, dim: int, hidden: int = 2048, out: int = 128):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                                    nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def run_peer(data: Path, budgets: list[int], seed: int) -> dict[int, float]:
    """kNN of the peer's encoder at each budget of training wall-clock (the probes pause the clock)."""
    started = time.perf_counter()
    torch.manual_seed(seed)  # the encoder's init and the order of the batches; its views draw fresh entropy
    cfg = load_config(RECIPE, [f"data.train={data / 'train'}", f"data.eval={data}", *MODEL])
    splits = load_labeled(str(data), cfg)
    encoder = build_encoder_for(cfg)
    head = ProjectionHead(cfg.model.dim)
    nt_xent = InfoNCELoss(temperature=0.5, gather_distributed=False)  # lightly's NTXentLoss: the same loss
    opt = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=cfg.optim.lr,
                            weight_decay=cfg.optim.weight_decay)
    # The probe's inputs are normalised for dssl's modality; the peer was trained on ImageNet-normalised pixels.
    ours_mean, ours_std = (torch.tensor(v).view(1, 3, 1, 1) for v in (cfg.modality.mean, cfg.modality.std))
    peer_mean, peer_std = (torch.tensor(v).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))

    def knn() -> float:
        encoder.eval()
        with torch.no_grad():
            value = knn_probe(lambda x: encoder.embed((x * ours_std + ours_mean - peer_mean) / peer_std), splits,
                              cfg.eval)
        encoder.train()
        return value

    loader = torch.utils.data.DataLoader(PhotoViews(data / "train"), batch_size=BATCH, shuffle=True, num_workers=2,
                                         drop_last=True, persistent_workers=True)
    results, paused, pending, steps = {}, 0.0, list(budgets), 0
    print(f"  peer: random init kNN {knn():.3f}", flush=True)
    while pending:
        for view0, view1 in loader:
            loss = nt_xent(head(encoder.embed(view0)), head(encoder.embed(view1)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            elapsed = time.perf_counter() - started - paused
            if elapsed >= pending[0]:
                probe_started = time.perf_counter()
                results[pending.pop(0)] = knn()
                paused += time.perf_counter() - probe_started
                print(f"  peer: {elapsed:.0f} s, {steps} steps, loss {loss.item():.3f}, kNN "
                      f"{list(results.values())[-1]:.3f}", flush=True)
                if not pending:
                    break
    return results


# --- dssl -------------------------------------------------------------------------------------------------------

def logged_knn(run_dir: Path) -> list[tuple[float, float]]:
    """(epoch-seconds, kNN) of every probe the run has logged to MLflow so far (it logs as it trains)."""
    state_file = run_dir / "run.json"
    if not state_file.exists():
        return []
    state = json.loads(state_file.read_text())
    history = MlflowClient(state["tracking_uri"]).get_metric_history(state["mlflow_run_id"], "knn_top1")
    return sorted((m.timestamp / 1000, m.value) for m in history)


def run_dssl(data: Path, work: Path, budgets: list[int], probe_every: int, seed: int) -> dict[int, float]:
    """kNN of `dssl train` at each budget: the last probe it logged before the budget."""
    run_dir = work / "dssl_run"
    command = [sys.executable, "-m", "distributed_ssl.cli", "train", str(RECIPE), f"data.train={data / 'train'}",
               f"data.eval={data}", f"run.dir={run_dir}", *MODEL, "train.batch_size=64", "scaling.num_workers=2",
               "train.epochs=10000", f"train.eval_every_epochs={probe_every}", "tracking.log_model=false",
               "train.checkpoint_every=100000", "optim.warmup_fraction=0", f"optim.min_lr={PEER_LR}", f"train.seed={seed}", "--overwrite"]
    started = time.time()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    probes: list[tuple[float, float]] = []
    try:
        while process.poll() is None and not (probes and probes[-1][0] >= budgets[-1]):
            time.sleep(5)
            probes = [(stamp - started, value) for stamp, value in logged_knn(run_dir)]
    finally:
        if process.poll() is None:  # the run has passed the largest budget: stop it and its local Ray
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=120)
    for seconds, value in probes:
        print(f"  dssl: {seconds:.0f} s, kNN {value:.3f}", flush=True)
    return {b: max(((s, v) for s, v in probes if s <= b), default=(0, math.nan))[1] for b in budgets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", default="300,600,900", help="wall-clock seconds at which kNN is compared")
    parser.add_argument("--probe-every", type=int, default=2, help="dssl's epochs between probes (11 steps each)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix="dssl-vs-lightly-")))
    parser.add_argument("--seed", type=int, default=0, help="train.seed of dssl and the peer's torch seed")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "versus_lightly_cpu.md")
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))

    data = args.work / "photos"
    if not (data / "train" / "manifest.json").exists() and dssl(["data", "sample", "image", str(data), "--set",
                                                                  "photos"]) != 0:
        raise SystemExit(f"could not write the photo-region set to {data}")
    ours = run_dssl(data, args.work, budgets, args.probe_every, args.seed)
    peer = run_peer(data, budgets, args.seed)
    lines = ["SimCLR, photo-region set, ViT patch 4 / 192 / depth 4 / 3 heads, batch 128, AdamW 1e-3, this machine "
             f"({os.cpu_count()} cores), seed {args.seed}; kNN top-1 (k 20) on val",
             "", "| wall-clock s | lightly recipe, plain loop | dssl train | dssl / lightly |", "|---|---|---|---|"]
    for b in budgets:
        lines.append(f"| {b} | {peer[b]:.3f} | {ours[b]:.3f} | {ours[b] / peer[b]:.2f}x |")
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Which recipe levers move kNN above the random-init encoder: one plain training loop per variant, one table.

Every variant is the same recipe with a few dotted overrides, trained in this process (no Ray, no DeepSpeed: the
project's own method, modality augmentations and kNN probe; the Trainer's AdamW (its parameter groups, betas and
gradient clip) and its schedules from engine/schedules.py; `on_step_end` after each step, so an EMA teacher follows
as in a real run) for the same steps and seed; kNN top-1 on the val split of the encoder the run would deliver
(`method.embed`: the student, or the EMA teacher under `method.output_encoder=teacher`) is measured at random init
and every `--eval-every` steps.
A quick way to find why a method learns less per sample before spending a sweep on it:

    python benchmarks/recipe_levers.py [--data runs/bench_levers/photos] [--steps 200] \\
        [--variant "augment.crop_scale_min=0.08" --variant "..."] [--out benchmarks/results/recipe_levers_cpu.md]

The default variants are the augmentation levers of the image SimCLR recipe on the photo-region set.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import numpy as np
import torch

from distributed_ssl.cli import main as dssl
from distributed_ssl.config import load_config
from distributed_ssl.data.shard_reader import read_columns
from distributed_ssl.engine.param_groups import param_groups
from distributed_ssl.engine.schedules import apply_values, build_schedules, values_at
from distributed_ssl.evaluation.knn_probe import knn_probe
from distributed_ssl.evaluation.labeled_set import load_labeled
from distributed_ssl.evaluation.raw_features import raw_feature_knn
from distributed_ssl.methods.registry import build_method, view_spec_for
from distributed_ssl.modalities.preprocess import make_views_batch
from distributed_ssl.modalities.registry import build_modality

DEFAULT_VARIANTS = [
    "",
    "augment.crop_scale_min=0.08",
    "augment.crop_scale_min=0.08 augment.jitter_strength=0.2 augment.grayscale_prob=0.0",
    "augment.crop_scale_min=0.08 augment.jitter_prob=0.0 augment.grayscale_prob=0.0 augment.blur_prob=0.0",
]


def run_variant(recipe: str, data: str, overrides: list[str], steps: int, batch: int, eval_every: int,
                seed: int) -> dict:
    """kNN at random init and every `eval_every` steps of one plain-loop run, and its wall time."""
    torch.manual_seed(seed)
    cfg = load_config(recipe, [f"data.train={data}/train", f"data.eval={data}", *overrides])
    modality, spec = build_modality(cfg), view_spec_for(cfg)
    records = read_columns(f"{data}/train", modality.record_columns)
    n = len(next(iter(records.values())))
    splits = load_labeled(data, cfg)
    method = build_method(cfg)
    opt = torch.optim.AdamW(param_groups(method.trainable_module(), cfg.optim.weight_decay), lr=cfg.optim.lr,
                            betas=cfg.optim.betas)
    schedules = build_schedules(cfg, method.schedules, steps)  # the Trainer's own per-step arrays

    def knn() -> float:
        method.eval()
        with torch.no_grad():
            value = knn_probe(method.embed, splits, cfg.eval)
        method.train()
        return value

    row = {"variant": " ".join(overrides) or "(recipe as is)", "raw": raw_feature_knn(cfg.modality.name, splits,
                                                                                        cfg.eval), "knn": {0: knn()}}
    rng = np.random.default_rng(seed)
    order, pos, started = rng.permutation(n), 0, time.perf_counter()
    for step in range(steps):
        if pos + batch > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos:pos + batch]
        pos += batch
        views = make_views_batch({c: v[idx] for c, v in records.items()}, modality, spec, seed=seed * 100_000 + step)
        inputs = {k: torch.from_numpy(v) for k, v in views.items() if k != "label"}
        apply_values(values_at(schedules, step), opt, method)  # as the Trainer steps
        loss = method(inputs)["loss"]
        opt.zero_grad()
        loss.backward()
        if cfg.optim.grad_clip > 0:  # DeepSpeed's gradient_clipping in a run
            torch.nn.utils.clip_grad_norm_(method.trainable_module().parameters(), cfg.optim.grad_clip)
        opt.step()
        method.on_step_end(step + 1)  # finished steps, from 1: an EMA teacher follows as in the Trainer
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            row["knn"][step + 1] = knn()
    row["wall_s"] = time.perf_counter() - started
    return row


def markdown(rows: list[dict], steps: int) -> str:
    evals = sorted({s for r in rows for s in r["knn"] if s})
    head = ["variant (dotted overrides)", "kNN random init", *[f"kNN @{s}" for s in evals],
            f"vs random init @{steps}", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        k = r["knn"]
        lines.append("| " + " | ".join([f"`{r['variant']}`", f"{k[0]:.3f}", *[f"{k[s]:.3f}" for s in evals],
                                         f"{k[steps] - k[0]:+.3f}", f"{r['wall_s']:.0f}"]) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="jobs/configs/image_simclr.yaml")
    p.add_argument("--data", default="runs/bench_levers/photos",
                   help="a labeled train/ + val/ set; written (photo regions) when missing")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=128, help="the global batch of a 2-worker run of the recipe")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", action="append", help="dotted overrides of one variant (repeatable)")
    p.add_argument("--out", default=None, help="also write the table to this file")
    args = p.parse_args()
    if not (Path(args.data) / "train" / "manifest.json").exists():
        if dssl(["data", "sample", "image", args.data, "--set", "photos"]) != 0:
            raise SystemExit(f"could not write the photo-region set to {args.data}")
    rows = []
    for variant in args.variant or DEFAULT_VARIANTS:
        rows.append(run_variant(args.recipe, args.data, shlex.split(variant), args.steps, args.batch_size,
                                args.eval_every, args.seed))
        print(markdown(rows[-1:], args.steps).splitlines()[-1], flush=True)
    table = markdown(rows, args.steps)
    title = (f"{args.recipe} on {args.data}: {args.steps} steps of batch {args.batch_size}, seed {args.seed}, one "
             f"process; hand-made feature kNN {rows[0]['raw']:.3f}")
    print(f"\n{title}\n\n{table}")
    if args.out:
        Path(args.out).write_text(f"{title}\n\n{table}\n")


if __name__ == "__main__":
    main()

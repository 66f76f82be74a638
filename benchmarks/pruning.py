"""Does pruning help at equal compute? kNN top-1 after training on 100 %, prototype-pruned and random subsets.

1. Pretrain on all of the digits sample set (`dssl data sample image`); this run's encoder also scores records.
2. Embed the train split with it (`dssl data embed`) and prune to `--keep` with each strategy (`dssl data prune`).
3. Pretrain from scratch on each kept subset (`data.keep_ids`) for the same number of optimizer steps as run 1.
4. Print the kNN top-1 of every run as a table (also OUT/pruning.md and OUT/pruning.json).

    python benchmarks/pruning.py [--out runs/bench_pruning] [--epochs 8] [--keep 0.7] [--arms ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from distributed_ssl.config import load_config  # noqa: E402
from distributed_ssl.curation.embed import embed_shards  # noqa: E402
from distributed_ssl.curation.prune import PruneOptions, prune  # noqa: E402
from distributed_ssl.data.sample_image import write_digits  # noqa: E402
from distributed_ssl.launch.trainer import run_training  # noqa: E402

ARMS = {  # name -> pruning options (None: all records)
    "100 %": None,
    "prototype (hard)": {"strategy": "prototype", "prefer": "hard"},
    "prototype (easy)": {"strategy": "prototype", "prefer": "easy"},
    "random": {"strategy": "random"},
}


def train(recipe: str, overrides: list[str]) -> dict:
    cfg = load_config(recipe, overrides)
    return run_training(cfg, overwrite=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench_pruning")
    p.add_argument("--recipe", default="jobs/configs/image_simclr.yaml")
    p.add_argument("--epochs", type=int, default=8, help="epochs of the 100 %% run; the others match its steps")
    p.add_argument("--keep", type=float, default=0.7)
    p.add_argument("--k", type=int, default=10, help="k-means clusters for the prototype score")
    p.add_argument("--arms", default="100 %,prototype (hard),random",
                   help="comma-separated subset of: " + ", ".join(ARMS))
    args = p.parse_args()
    out = Path(args.out).resolve()
    data = out / "digits"
    if not (data / "train" / "manifest.json").exists():
        write_digits(str(data))
    train_dir = str(data / "train")
    common = [f"data.train={train_dir}", f"data.eval={data}", "train.eval_every_epochs=1000",
              "train.checkpoint_every=100000", f"tracking.uri=sqlite:///{out}/mlflow.db",
              "tracking.experiment=bench_pruning"]
    rows = []
    started = time.time()
    full = train(args.recipe, common + [f"train.epochs={args.epochs}", f"run.dir={out}/full"])
    budget = int(full["steps"])
    rows.append({"data": "100 %", "records": full["train_records"], "steps": budget,
                 "knn_top1": full["knn_top1"], "wall_s": full["wall_time_s"]})
    arms = [a.strip() for a in args.arms.split(",") if a.strip() and a.strip() != "100 %"]
    if any(ARMS[a]["strategy"] != "random" for a in arms):
        embed_shards(str(out / "full"), train_dir, str(out / "embeddings"), actors=2)
    for arm in arms:
        name = arm.replace(" ", "_").replace("(", "").replace(")", "")
        opts = PruneOptions(keep=args.keep, k=args.k, **ARMS[arm])
        pruned = prune(train_dir, str(out / f"pruned_{name}"), opts,
                       str(out / "embeddings") if opts.strategy != "random" else None)
        cfg = load_config(args.recipe, common)
        per_step = cfg.scaling.num_workers * cfg.train.batch_size * cfg.train.grad_accum
        steps_per_epoch = pruned["kept"] // per_step
        epochs = math.ceil(budget / max(steps_per_epoch, 1))
        result = train(args.recipe, common + [f"data.keep_ids={pruned['kept_ids']}", f"train.epochs={epochs}",
                                              f"train.max_steps={budget}", f"run.dir={out}/{name}"])
        rows.append({"data": f"{arm} {args.keep:.0%}", "records": result["train_records"], "steps": result["steps"],
                     "knn_top1": result["knn_top1"], "wall_s": result["wall_time_s"]})
    lines = ["| training data | records | optimizer steps | kNN top-1 | wall s |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['data']} | {r['records']} | {r['steps']} | {r['knn_top1']:.4f} | {r['wall_s']:.0f} |"
              for r in rows]
    table = "\n".join(lines)
    print(table)
    print(f"total wall time {time.time() - started:.0f} s")
    (out / "pruning.md").write_text(table + "\n")
    (out / "pruning.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

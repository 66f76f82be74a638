"""Representation quality of every method x modality recipe at one fixed budget, against a random-init encoder.

Each recipe in jobs/configs/ trains on its built-in sample set (`dssl data sample image|audio|lidar`) for the same
number of optimizer steps per modality; the table reports kNN and linear top-1 on the val split, the same encoder
at random init (the baseline, measured in the same run), the collapse monitor and the wall time:

    python benchmarks/quality.py [--out runs/bench_quality] [--steps 40] [--modalities image,audio,lidar]
                                 [--methods simclr,mae,byol,dino,jepa] [--readme README.md]

With --readme the table replaces the block between `<!-- quality:begin -->` and `<!-- quality:end -->`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from distributed_ssl.cli import main as dssl  # noqa: E402
from distributed_ssl.config import load_config  # noqa: E402
from distributed_ssl.launch.trainer import run_training  # noqa: E402

RECIPES = Path(__file__).resolve().parents[1] / "jobs" / "configs"
METHODS = ["simclr", "mae", "byol", "dino", "jepa"]
MODALITIES = ["image", "audio", "lidar"]
COLUMNS = ["recipe", "steps", "knn_top1", "knn_random_init", "linear_top1", "linear_random_init", "collapsed",
           "wall_s"]


def sample_data(out: Path, modality: str) -> Path:
    """The modality's built-in labeled sample set (train/ and val/), written once."""
    data = out / "data" / modality
    if not (data / "train" / "manifest.json").exists():
        if dssl(["data", "sample", modality, str(data)]) != 0:
            raise RuntimeError(f"could not write the {modality} sample set to {data}")
    return data


def measure(recipe: Path, data: Path, out: Path, steps: int) -> dict:
    cfg = load_config(recipe, [f"data.train={data / 'train'}", f"data.eval={data}", f"run.dir={out / recipe.stem}",
                               f"train.max_steps={steps}", "train.epochs=1000", "train.eval_every_epochs=1000",
                               "train.checkpoint_every=100000", f"tracking.uri=sqlite:///{out}/mlflow.db",
                               "tracking.experiment=bench_quality"])
    started = time.time()
    summary = run_training(cfg, overwrite=True)
    return {"recipe": recipe.stem, "steps": summary["steps"], "knn_top1": summary["knn_top1"],
            "knn_random_init": summary["knn_top1_random_init"], "linear_top1": summary.get("linear_top1"),
            "linear_random_init": summary.get("linear_top1_random_init"), "collapsed": summary.get("collapsed"),
            "wall_s": round(time.time() - started, 1)}


def markdown(rows: list[dict]) -> str:
    def cell(v) -> str:
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) and abs(v) < 10 else str(v))

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def replace_readme_block(readme: Path, table: str) -> None:
    text = readme.read_text()
    pattern = re.compile(r"(<!-- quality:begin -->\n).*?(<!-- quality:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no <!-- quality:begin --> ... <!-- quality:end --> block")
    readme.write_text(pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench_quality")
    p.add_argument("--steps", type=int, default=40, help="optimizer steps of every recipe (the fixed budget)")
    p.add_argument("--modalities", default=",".join(MODALITIES))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--readme", default=None, help="write the table into this README's quality block")
    args = p.parse_args()
    out = Path(args.out).resolve()
    rows = []
    for modality in args.modalities.split(","):
        data = sample_data(out, modality)
        for method in args.methods.split(","):
            recipe = RECIPES / f"{modality}_{method}.yaml"
            if not recipe.exists():
                raise SystemExit(f"no recipe {recipe} (--modalities/--methods)")
            rows.append(measure(recipe, data, out, args.steps))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    table = markdown(rows)
    print(f"\n{args.steps} optimizer steps per recipe, 2 Ray Train workers unless the recipe says otherwise\n")
    print(table)
    (out / "quality.md").write_text(table + "\n")
    (out / "quality.json").write_text(json.dumps(rows, indent=2))
    if args.readme:
        replace_readme_block(Path(args.readme), table)


if __name__ == "__main__":
    main()

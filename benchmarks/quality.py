"""Representation quality of every method x modality recipe at one fixed budget, against two free baselines.

Each recipe in jobs/configs/ trains on a built-in set with train and val from disjoint sources (`dssl data sample
image|audio|lidar`: photo regions, spoken words by voice, LiDAR object tiles by scene; `--sets image=,lidar=` for
the quick digits and scene types) for the same number of optimizer steps, once per
seed; the table reports kNN and linear top-1 on the val split as mean ± std over the seeds, beside the same encoder
at random init and the hand-made-feature kNN (both measured in the same runs), samples seen and the wall time:

    python benchmarks/quality.py [--out runs/bench_quality] [--steps 40] [--seeds 3] [--modalities image,audio,lidar]
                                 [--methods simclr,mae,byol,dino,jepa] [--sets image=photos,lidar=objects] [--set KEY=VALUE ...]
                                 [--readme README.md] [--plot PNG]
    python benchmarks/quality.py --from-json RUN/quality.json ... --plot benchmarks/results/quality_vs_time.png

With --readme the table replaces the block between `<!-- quality:begin -->` and `<!-- quality:end -->`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from distributed_ssl.cli import main as dssl  # noqa: E402
from distributed_ssl.config import load_config  # noqa: E402
from distributed_ssl.launch.trainer import run_training  # noqa: E402

RECIPES = Path(__file__).resolve().parents[1] / "jobs" / "configs"
METHODS = ["simclr", "mae", "byol", "dino", "jepa"]
MODALITIES = ["image", "audio", "lidar"]
COLUMNS = ["recipe", "data", "steps", "samples", "knn_top1", "knn_random_init", "knn_raw_features", "linear_top1",
           "linear_random_init", "collapsed", "wall_s"]
# the per-seed values a row keeps as mean ± std
MEASURES = ["knn_top1", "knn_random_init", "linear_top1", "linear_random_init", "wall_s"]


# the source-disjoint sample sets; a modality not named here uses its default set
SAMPLE_SETS = "image=photos,lidar=objects"


def sample_data(out: Path, modality: str, sets: dict[str, str]) -> Path:
    """The modality's built-in labeled set (train/ and val/), written once."""
    named = sets.get(modality, "")
    data = out / "data" / (f"{modality}_{named}" if named else modality)
    if not (data / "train" / "manifest.json").exists():
        if dssl(["data", "sample", modality, str(data), *(["--set", named] if named else [])]) != 0:
            raise RuntimeError(f"could not write the {modality} sample set to {data}")
    return data


def measure(recipe: Path, data: Path, out: Path, steps: int, seed: int, extra: list[str]) -> dict:
    """One run of `recipe` on `data`; `extra` are dotted overrides applied after the benchmark's own."""
    cfg = load_config(recipe, [f"data.train={data / 'train'}", f"data.eval={data}",
                               f"run.dir={out / f'{recipe.stem}_seed{seed}'}", f"train.seed={seed}",
                               f"train.max_steps={steps}", "train.epochs=1000", "train.eval_every_epochs=1000",
                               "train.checkpoint_every=100000", f"tracking.uri=sqlite:///{out}/mlflow.db",
                               "tracking.experiment=bench_quality", *extra])
    started = time.time()
    summary = run_training(cfg, overwrite=True)
    return {"recipe": recipe.stem, "data": data.name, "steps": summary["steps"],
            "samples": summary["steps"] * cfg.train.batch_size * cfg.scaling.num_workers,
            "knn_top1": summary["knn_top1"], "knn_random_init": summary["knn_top1_random_init"],
            "knn_raw_features": summary.get("knn_top1_raw_features"), "linear_top1": summary.get("linear_top1"),
            "linear_random_init": summary.get("linear_top1_random_init"), "collapsed": summary.get("collapsed"),
            "wall_s": round(time.time() - started, 1)}


def over_seeds(runs: list[dict]) -> dict:
    """One row for a recipe's seeds: mean ± std of MEASURES, the rest from the first run (collapsed: any)."""
    row = dict(runs[0], collapsed=any(r["collapsed"] for r in runs), seeds=len(runs))
    for key in MEASURES:
        values = [r[key] for r in runs if r[key] is not None]
        row[key] = (statistics.fmean(values), statistics.pstdev(values)) if values else None
    return row


def markdown(rows: list[dict]) -> str:
    def cell(v) -> str:
        if isinstance(v, tuple):
            mean, std = v
            return f"{mean:.1f} ± {std:.1f}" if mean >= 10 else f"{mean:.3f} ± {std:.3f}"
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


def plot(rows: list[dict], path: Path) -> None:
    """kNN (top row) and linear top-1 (bottom row) against wall seconds, a column per data set: each recipe a line
    from its random-init score (at 0 s) to its trained score (mean ± std over seeds), the hand-made-feature kNN
    dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = sorted({r["data"] for r in rows})
    fig, axes = plt.subplots(2, len(sets), figsize=(5.5 * len(sets), 8.4), squeeze=False)
    for col, name in enumerate(sets):
        for ax, probe in zip(axes[:, col], ("knn", "linear"), strict=True):
            for r in (r for r in rows if r["data"] == name):
                (wall, _), (score, std) = r["wall_s"], r[f"{probe}_top1"]
                init = r[f"{probe}_random_init"][0]
                line = ax.plot([0, wall], [init, score], marker="o", alpha=0.8)[0]
                ax.errorbar([wall], [score], yerr=[std], color=line.get_color(), capsize=3)
                ax.annotate(r["recipe"], (wall, score), fontsize=8, xytext=(4, 2), textcoords="offset points")
            raw = next((r["knn_raw_features"] for r in rows if r["data"] == name and r["knn_raw_features"]), None)
            if raw is not None:
                ax.axhline(raw, linestyle="--", color="grey", label=f"hand-made feature kNN {raw:.3f}")
                ax.legend(loc="lower right", fontsize=8)
            ax.set(title=f"{name}: {probe} top-1 vs wall time", xlabel="wall seconds (whole run)",
                   ylabel=f"{probe} top-1 (val, mean ± std)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gathered_rows(paths: list[str]) -> list[dict]:
    """The rows of earlier runs' quality.json files; JSON keeps a (mean, std) pair as a list."""
    return [{k: tuple(v) if isinstance(v, list) and k in MEASURES else v for k, v in row.items()}
            for f in paths for row in json.loads(Path(f).read_text())]


def trained_rows(args: argparse.Namespace, out: Path) -> list[dict]:
    """Train every recipe of --modalities × --methods for every seed; one row per recipe, printed as it ends."""
    sets = dict(item.split("=", 1) for item in args.sets.split(",") if item)
    rows = []
    for modality in args.modalities.split(","):
        data = sample_data(out, modality, sets)
        for method in args.methods.split(","):
            recipe = RECIPES / f"{modality}_{method}.yaml"
            if not recipe.exists():
                raise SystemExit(f"no recipe {recipe} (--modalities/--methods)")
            runs = [measure(recipe, data, out, args.steps, seed, args.overrides) for seed in range(args.seeds)]
            rows.append(over_seeds(runs))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench_quality")
    p.add_argument("--steps", type=int, default=40, help="optimizer steps of every recipe (the fixed budget)")
    p.add_argument("--modalities", default=",".join(MODALITIES))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", type=int, default=3, help="runs per recipe (train.seed 0..N-1), reported as mean ± std")
    p.add_argument("--sets", default=SAMPLE_SETS, help="MODALITY=NAME,...: the `dssl data sample --set` of each "
                   "modality (an empty NAME: its quick default set)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a dotted override for every recipe, e.g. --set augment.jitter_prob=0 (repeatable)")
    p.add_argument("--readme", default=None, help="write the table into this README's quality block")
    p.add_argument("--plot", default=None, help="kNN against wall time (PNG; default OUT/quality_vs_time.png)")
    p.add_argument("--from-json", nargs="+", default=None, metavar="QUALITY_JSON",
                   help="train nothing: gather the rows of earlier runs' quality.json into one table and plot, e.g. "
                   "the README's (--plot benchmarks/results/quality_vs_time.png)")
    args = p.parse_args()
    out = Path(args.out).resolve()
    if args.from_json:
        rows = gathered_rows(args.from_json)
        table = markdown(rows)
        print(table)
    else:
        rows = trained_rows(args, out)
        table = markdown(rows)
        print(f"\n{args.steps} optimizer steps per recipe, {args.seeds} seeds (mean ± std), 2 Ray Train workers "
              "unless the recipe says otherwise\n")
        print(table)
        (out / "quality.md").write_text(table + "\n")
        (out / "quality.json").write_text(json.dumps(rows, indent=2))
    plot(rows, Path(args.plot) if args.plot else out / "quality_vs_time.png")
    if args.readme:
        replace_readme_block(Path(args.readme), table)


if __name__ == "__main__":
    main()

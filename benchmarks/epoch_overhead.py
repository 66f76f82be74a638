"""Per-epoch overhead on a small set trained for many epochs: one Ray Data pass per epoch against several.

The case that motivated `data.epochs_per_pass`: audio MAE, a 160-clip set, batch 64 per worker on 2 workers, so
one optimizer step per epoch and 200 epochs. Both runs are real `dssl train` runs (Ray Train, DeepSpeed, probes
only at the end) on the same spoken-words set; the table gives wall time, the time the steps computed
(steps × batch × workers / samples/s), the start-up before the first step (wall − compute − epoch gaps − eval),
and the ratio the issue asks for: wall / (compute + start-up), goal ≤ 2.

    python benchmarks/epoch_overhead.py [--steps 200] [--clips-per-word 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "epoch_overhead_cpu.txt"
WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off"]


def run(data: Path, run_dir: Path, steps: int, per_pass: str) -> dict:
    from distributed_ssl.config import load_config
    from distributed_ssl.launch.trainer import run_training

    overrides = [f"data.train={data / 'train'}", f"data.eval={data}", f"run.dir={run_dir}",
                 "train.batch_size=64", f"train.epochs={steps}", f"train.max_steps={steps}",
                 f"train.eval_every_epochs={steps}", "train.log_every=10", f"train.checkpoint_every={steps}",
                 "tracking.log_model=false", f"data.epochs_per_pass={per_pass}" if per_pass != "auto" else ""]
    cfg = load_config(ROOT / "jobs" / "configs" / "audio_mae.yaml", [o for o in overrides if o])
    started = time.perf_counter()
    summary = run_training(cfg, progress=False)
    wall = time.perf_counter() - started
    compute = summary["steps"] * 64 * cfg.scaling.num_workers / summary["samples_per_s"]
    gaps = summary["epoch_gap_seconds"] * max(summary["epochs"] - 1, 0)
    startup = max(wall - compute - gaps - summary["eval_seconds"], 0.0)
    return {"epochs_per_pass": per_pass, "wall_s": wall, "compute_s": compute, "epoch_gaps_s": gaps,
            "eval_s": summary["eval_seconds"], "startup_s": startup, "ratio": wall / (compute + startup),
            "input_wait_fraction": summary["input_wait_fraction"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--clips-per-word", type=int, default=20, help="8 words: 20 gives 160 clips")
    args = p.parse_args()
    import ray

    from distributed_ssl.data.sample_audio import write_spoken_words

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "words"
        write_spoken_words(str(data), per_word=args.clips_per_word, words=WORDS, val_fraction=0.2)
        ray.init(num_cpus=6, object_store_memory=512 * 1024 * 1024)
        rows = [run(data, Path(tmp) / f"run-{mode}", args.steps, mode) for mode in ("1", "auto")]
    lines = [f"audio MAE, {args.clips_per_word * len(WORDS)} clips, {args.steps} steps, 2 workers, this CPU",
             f"{'epochs/pass':>11} {'wall s':>8} {'compute s':>9} {'gaps s':>7} {'eval s':>7} {'start-up s':>10} "
             f"{'wall/(compute+start-up)':>24} {'input wait':>10}"]
    for r in rows:
        lines.append(f"{r['epochs_per_pass']:>11} {r['wall_s']:8.1f} {r['compute_s']:9.1f} {r['epoch_gaps_s']:7.1f} "
                     f"{r['eval_s']:7.1f} {r['startup_s']:10.1f} {r['ratio']:24.2f} "
                     f"{100 * r['input_wait_fraction']:9.0f}%")
    lines.append(f"wall time, auto vs one pass per epoch: {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}x "
                 f"(goal: ratio <= 2)")
    text = "\n".join(lines)
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text + "\n" + json.dumps(rows) + "\n")


if __name__ == "__main__":
    main()

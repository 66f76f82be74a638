"""Pipeline start-up on one machine: the first batch of a fresh Ray, preprocessing tasks capped at the cores or not.

Each preprocessing task runs in a Ray worker process that imports torch and the modality code as it starts. A
local Ray declares more logical CPUs than the machine has cores (dssl's own local Ray: at least 4; the tests': 6),
and Ray Data starts one task per free CPU slot, so on a small machine many cold processes start at once. Since
`data.preprocess_tasks` defaults to the core count on a one-machine Ray, this script times, for the built-in
digits set (1,438 records, SimCLR views at 32 px, two epochs a pass as in the tests' runs), with a fresh Ray each time so every task process starts cold:

- the time to the first batch and to the end of the first pass (cold task processes),
- the second pass (the same, now warm, processes),

for the default cap and for no cap (`data.preprocess_tasks` = the Ray's logical CPUs / `data.preprocess_cpus`, what
Ray Data does by itself) [baseline]. Repeated `--repeats` times; the median is printed.

    python benchmarks/pipeline_startup.py [--ray-cpus 6] [--repeats 3] [--out benchmarks/results/pipeline_startup_cpu.txt]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import ray

from distributed_ssl.config import load_config
from distributed_ssl.data.sample_image import write_digits
from distributed_ssl.methods.registry import view_spec_for
from distributed_ssl.modalities.train_dataset import build_train_dataset
from distributed_ssl.util.machine import machine_cores

ROOT = Path(__file__).resolve().parents[1]
EPOCHS_PER_PASS = 2  # what the tests' 2-epoch runs on this set stream through one pass (8 blocks)


def time_passes(train: Path, ray_cpus: int, tasks: int | None) -> tuple[float, float, float]:
    """(first batch, first pass, second pass) seconds on a fresh local Ray."""
    ray.init(address="local", num_cpus=ray_cpus, object_store_memory=512 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False)
    try:
        cfg = load_config(None, [f"data.train={train}", *([f"data.preprocess_tasks={tasks}"] if tasks else [])])
        ds = build_train_dataset(cfg, view_spec_for(cfg), epochs_per_pass=EPOCHS_PER_PASS)
        times = []
        for _ in range(2):
            started, first = time.perf_counter(), None
            for _batch in ds.iter_torch_batches(batch_size=32):
                first = first if first is not None else time.perf_counter() - started
            times.append((first, time.perf_counter() - started))
        return times[0][0], times[0][1], times[1][1]
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ray-cpus", type=int, default=6, help="logical CPUs of the local Ray (the tests use 6)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pipeline_startup_cpu.txt")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="The maximum number of concurrent tasks")  # the baseline's high cap

    data = Path(tempfile.mkdtemp(prefix="dssl-startup-")) / "digits"
    write_digits(str(data), shard_size=400)
    uncapped = int(args.ray_cpus / load_config(None).data.preprocess_cpus)
    settings = [("no cap (Ray Data's own choice) [baseline]", uncapped),
                (f"capped at the cores ({machine_cores()}, the default)", None)]
    results = {}
    for _ in range(args.repeats):  # interleaved, so a slow moment of the machine hits both settings
        for name, tasks in settings:
            results.setdefault(name, []).append(time_passes(data / "train", args.ray_cpus, tasks))

    base = statistics.median(r[1] for r in results[settings[0][0]])
    lines = [f"Pipeline start-up, digits (1,438 records, {EPOCHS_PER_PASS} epochs a pass), fresh local Ray of {args.ray_cpus} logical CPUs on "
             f"{machine_cores()} cores, median of {args.repeats}",
             f"{'preprocessing tasks':<48} {'first batch s':>13} {'first pass s':>12} {'second pass s':>13} "
             f"{'first pass vs baseline':>22}"]
    for name, _ in settings:
        first, cold, warm = (statistics.median(r[i] for r in results[name]) for i in range(3))
        lines.append(f"{name:<48} {first:>13.1f} {cold:>12.1f} {warm:>13.1f} {base / cold:>21.2f}x")
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Fixed cost of one training run: the wall time of a 6-step run, where almost all of it is start-up and shut-down.

A sweep pays this once per trial and the test suite once per end-to-end run, so it matters far beyond its size.
Ray Train's controller checks its workers every `RAY_TRAIN_HEALTH_CHECK_INTERVAL_S` (Ray's default 2 s), and each
change of the run's state (workers placed, started, a report, the end) waits for the next check. dssl sets the
interval from `run.poll_interval_s` (default 0.5 s). This script times, on a warm local Ray of its own for each
setting (the first run of each is dropped as a warm-up), `run_training` of the built-in digits set (vit_debug, 1 worker, 6 steps of
batch 32, probes at random init and at the end):

- `run.poll_interval_s=2.0`, Ray's own default [baseline],
- the default `run.poll_interval_s`,
- a bare TorchTrainer whose function only imports torch and reports once, at the default interval: Ray Train's own
  floor on this machine, for scale.

    python benchmarks/run_overhead.py [--repeats 3] [--out benchmarks/results/run_overhead_cpu.txt]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import ray
import ray.train
from ray.train.torch import TorchTrainer

from distributed_ssl.config import load_config
from distributed_ssl.data.sample_image import write_digits
from distributed_ssl.launch.ray_runtime import set_train_controller_env
from distributed_ssl.launch.trainer import run_training
from distributed_ssl.util.machine import machine_cores

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "jobs" / "configs" / "image_simclr.yaml"
STEPS = 6


def tiny_run(data: Path, work: Path, name: str, poll_s: float) -> float:
    """Wall seconds of one `run_training` of STEPS steps into a fresh run dir."""
    cfg = load_config(RECIPE, [f"data.train={data / 'train'}", f"data.eval={data}", f"run.dir={work / name}",
                               f"tracking.uri=sqlite:///{work / 'mlflow.db'}", "model.encoder=vit_debug",
                               "train.batch_size=32", f"train.max_steps={STEPS}", "train.epochs=1",
                               "train.log_every=2", "scaling.num_workers=1", "tracking.log_model=false",
                               "eval.batch_size=512", f"run.poll_interval_s={poll_s}"])
    started = time.perf_counter()
    run_training(cfg, progress=False)
    return time.perf_counter() - started


def _import_torch_and_report(_config: dict) -> None:
    import torch  # noqa: F401  (what every dssl worker imports first)

    ray.train.report({"done": 1})


def bare_run(work: Path, name: str) -> float:
    """Wall seconds of a TorchTrainer that does nothing: Ray Train's own start-up and shut-down."""
    started = time.perf_counter()
    TorchTrainer(_import_torch_and_report,
                 scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
                 run_config=ray.train.RunConfig(storage_path=str(work / "bare"), name=name)).fit()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each setting (after one warm-up)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "run_overhead_cpu.txt")
    args = parser.parse_args()
    logging.getLogger("distributed_ssl").setLevel(logging.WARNING)

    work = Path(tempfile.mkdtemp(prefix="dssl-run-overhead-"))
    write_digits(str(work / "digits"), shard_size=400)
    default_poll = load_config(None).run.poll_interval_s
    settings = {"dssl run, poll 2.0 s (Ray's default) [baseline]": lambda n: tiny_run(work / "digits", work, n, 2.0),
                f"dssl run, poll {default_poll} s (the default)": lambda n: tiny_run(work / "digits", work, n,
                                                                                     default_poll),
                f"bare TorchTrainer, poll {default_poll} s": lambda n: bare_run(work, n)}
    times: dict[str, list[float]] = {name: [] for name in settings}
    for index, (name, run) in enumerate(settings.items()):
        # A Ray of its own for each setting: the controller's environment is part of its processes' runtime env,
        # and alternating two values in one Ray would make each run start processes the other's could not reuse.
        ray.init(address="local", num_cpus=6, object_store_memory=512 * 1024**2, dashboard_host="127.0.0.1",
                 log_to_driver=False)
        set_train_controller_env(load_config(None))  # the bare run's; a dssl run sets its own
        for repeat in range(args.repeats + 1):
            seconds = run(f"s{index}-r{repeat}")
            if repeat:  # the first run of a fresh Ray starts cold processes and is dropped
                times[name].append(seconds)
            print(f"  {name}: {seconds:.1f} s", flush=True)
        ray.shutdown()

    base = statistics.median(times[next(iter(settings))])
    lines = [f"One training run's fixed cost: digits, vit_debug, 1 worker, {STEPS} steps, warm local Ray of 6 logical "
             f"CPUs on {machine_cores()} cores, median of {args.repeats}",
             f"{'setting':<50} {'wall s':>7} {'runs':>14} {'vs baseline':>12}"]
    for name, values in times.items():
        spread = " ".join(f"{v:.1f}" for v in values)
        lines.append(f"{name:<50} {statistics.median(values):>7.1f} {spread:>14} "
                     f"{base / statistics.median(values):>11.2f}x")
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

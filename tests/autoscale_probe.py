"""Run by tests/test_autoscaling.py in its own process: a workload that needs worker-only resources (tasks
asking for `dssl_worker`, then optionally a 2-trial `dssl tune` sweep on a head with no CPUs of its own), and a
record of how many nodes were alive over time, printed as one JSON line.

A separate process so that its `ray.init` to the fake cluster cannot collide with a local Ray the test session
may already hold.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import ray

ROOT = Path(__file__).resolve().parents[1]


def alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n["Alive"]]


@ray.remote(num_cpus=1, resources={"dssl_worker": 1})
def on_worker(seconds: float) -> str:
    """Occupy a worker node's `dssl_worker` slot, then say which node ran it."""
    time.sleep(seconds)
    return ray.get_runtime_context().get_node_id()


def run_small_sweep(address: str, sweep_dir: Path, digits: Path) -> dict:
    """`dssl tune` as on a laptop, only pointed at the cluster: 2 trials of a tiny SimCLR run."""
    from distributed_ssl.config import load_config
    from distributed_ssl.launch.sweep import run_sweep

    overrides = {"data.train": str(digits / "train"), "data.eval": str(digits), "run.dir": str(sweep_dir),
                 "run.ray_address": address, "scaling.num_workers": 1, "train.batch_size": 32, "train.epochs": 1,
                 "train.max_steps": 3, "run.max_failures": 0, "eval.batch_size": 512, "tune.search": "grid",
                 "tune.scheduler": "none", "tune.num_samples": 1, "tune.space": {"optim.lr": "grid([0.001, 0.003])"},
                 "tracking.uri": f"sqlite:///{sweep_dir / 'mlflow.db'}"}
    cfg = load_config(ROOT / "jobs" / "configs" / "sweep_image_simclr.yaml", overrides)
    report = run_sweep(cfg)
    return {"trials": report["trials"], "best": report.get("best")}


def main(address: str, tasks: int, down_timeout_s: float, sweep_dir: str | None = None,
         digits: str | None = None) -> None:
    t0 = time.monotonic()
    ray.init(address=address, log_to_driver=False)
    head_id = ray.get_runtime_context().get_node_id()
    timeline: list[tuple[float, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            timeline.append((round(time.monotonic() - t0, 1), len(alive_nodes())))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ran_on = ray.get([on_worker.remote(4.0) for _ in range(tasks)])
    sweep = run_small_sweep(address, Path(sweep_dir), Path(digits)) if sweep_dir else None
    t_sweep_done = time.monotonic() - t0
    t_done = time.monotonic() - t0
    deadline = time.monotonic() + down_timeout_s
    while time.monotonic() < deadline and len(alive_nodes()) > 1:
        time.sleep(1)
    stop.set()
    watcher.join()
    timeline.append((round(time.monotonic() - t0, 1), len(alive_nodes())))
    print(json.dumps({"head": head_id, "ran_on": ran_on, "t_done": round(t_done, 1),
                      "t_sweep_done": round(t_sweep_done, 1), "timeline": timeline,
                      "sweep": sweep}, default=str))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), *sys.argv[4:6])

"""Run by tests/test_autoscaling.py in its own process: a 2-trial `dssl tune` sweep on a cluster whose head has
no CPUs of its own, so that every trial needs a node the autoscaler adds, and a record of how many nodes were
alive over time, printed as one JSON line.

A separate process so that its `ray.init` to the fake cluster cannot collide with a local Ray the test session
may already hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import ray

ROOT = Path(__file__).resolve().parents[1]
RESULT = "autoscale-probe-result: "  # Ray's own notices (e.g. the raylet's) may reach stdout too, after it


def read_result(stdout: str) -> dict:
    """The probe's JSON record among whatever else the process printed."""
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT)]
    if not lines:
        raise AssertionError(f"no result line in the probe's output:\n{stdout[-3000:]}")
    return json.loads(lines[-1][len(RESULT):])


def alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n["Alive"]]


def run_small_sweep(address: str, sweep_dir: Path, digits: Path) -> None:
    """`dssl tune` as on a laptop, only pointed at the cluster: 2 trials of a tiny SimCLR run.

    Run as its own driver process: Ray Data keeps helper actors alive for as long as their driver lives, and a
    node holding an actor never counts as idle, so the sweep's driver must exit before nodes can be removed.
    """
    from distributed_ssl.config import load_config
    from distributed_ssl.launch.sweep import run_sweep

    overrides = {"data.train": str(digits / "train"), "data.eval": str(digits / "val"), "run.dir": str(sweep_dir),
                 "run.ray_address": address, "scaling.num_workers": 1, "train.batch_size": 32, "train.epochs": 1,
                 "train.max_steps": 3, "run.max_failures": 0, "eval.batch_size": 512, "tune.search": "grid",
                 "tune.scheduler": "none", "tune.num_samples": 1, "tune.space": {"optim.lr": "grid([0.001, 0.003])"},
                 # an autoscaling cluster refuses a store on one disk: the test's MLflow server
                 "tracking.uri": os.environ["DSSL_TEST_TRACKING_URI"]}
    cfg = load_config(ROOT / "jobs" / "configs" / "sweep_image_simclr.yaml", overrides)
    report = run_sweep(cfg)
    print(RESULT + json.dumps({"trials": report["trials"]}))


def actors_off(head_id: str) -> list[str]:
    """Live actors on other nodes than the head: what keeps a worker node from counting as idle."""
    return [f"{a['ActorClassName']} {a.get('Name', '')}" for a in ray._private.state.actors().values()
            if a["State"] == "ALIVE" and a["Address"]["NodeID"] != head_id]


def wait_for_head_alone(timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(alive_nodes()) == 1:
            return True
        time.sleep(1)
    return False


def main(address: str, down_timeout_s: float, sweep_dir: str, digits: str) -> None:
    t0 = time.monotonic()
    ray.init(address=address, log_to_driver=False)
    head_id = ray.get_runtime_context().get_node_id()
    timeline: list[tuple[float, int]] = []
    marks: dict[str, float] = {}
    stop = threading.Event()

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - t0, 1)

    def watch() -> None:
        while not stop.is_set():
            timeline.append((round(time.monotonic() - t0, 1), len(alive_nodes())))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    proc = subprocess.run([sys.executable, "-m", "tests.autoscale_probe", "sweep", address, sweep_dir, digits],
                          capture_output=True, text=True, timeout=400)
    if proc.returncode != 0:
        raise RuntimeError(f"the sweep failed:\n{proc.stderr[-4000:]}")
    sweep = read_result(proc.stdout)
    mark("sweep_done")
    sweep["scaled_down"] = wait_for_head_alone(down_timeout_s)
    if not sweep["scaled_down"]:
        sweep["actors_off_head"] = actors_off(head_id)
    mark("sweep_scaled_down")
    stop.set()
    watcher.join()
    timeline.append((round(time.monotonic() - t0, 1), len(alive_nodes())))
    print(RESULT + json.dumps({"head": head_id, "marks": marks, "timeline": timeline, "sweep": sweep}))


if __name__ == "__main__":
    if sys.argv[1] == "sweep":
        run_small_sweep(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main(sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4])

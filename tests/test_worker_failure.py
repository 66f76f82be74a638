"""A training worker killed mid-run: Ray Train restarts the group from the last checkpoint and the run finishes."""

import json
import os
import signal
import threading
import time

import psutil
import pytest
from mlflow.tracking import MlflowClient

from distributed_ssl.config import load_config
from distributed_ssl.launch.trainer import run_training
from tests.conftest import tiny_overrides


def _registered_checkpoint_step(run_dir) -> int:
    """The step of the latest checkpoint Ray Train has registered (all ranks reported it), 0 if none."""
    snapshot = run_dir / "train" / "checkpoint_manager_snapshot.json"
    try:
        latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result")
    except (OSError, ValueError):
        return 0
    return int(latest["metrics"].get("global_step", 0)) if latest else 0


def _kill_one_worker_after_first_checkpoint(run_dir, killed: list, stop: threading.Event) -> None:
    while not stop.is_set():
        if _registered_checkpoint_step(run_dir) >= 8:
            for proc in psutil.process_iter(["cmdline"]):
                if "RayTrainWorker" in " ".join(proc.info["cmdline"] or []):
                    os.kill(proc.pid, signal.SIGKILL)
                    killed.append(proc.pid)
                    return
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.reliability(failure="a Ray Train worker process SIGKILLed after the first registered checkpoint",
                         response="Ray Train restarts the worker group from the last checkpoint (run.max_failures) "
                                  "and the run finishes in the same MLflow run")
def test_killed_worker_resumes_from_last_checkpoint(ray_cluster, digits, tmp_path):
    run_dir = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(digits, run_dir, **{
        "train.max_steps": 40, "train.checkpoint_every": 8, "train.log_every": 1, "run.max_failures": 2}))
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_one_worker_after_first_checkpoint, args=(run_dir, killed, stop))
    watcher.start()
    try:
        summary = run_training(cfg)
    finally:
        stop.set()
        watcher.join()
    assert killed, "no worker was killed: the test did not exercise a failure"
    assert summary["steps"] == 40 and summary["knn_top1"] is not None

    client = MlflowClient(summary["tracking_uri"])
    runs = client.search_runs([client.get_run(summary["mlflow_run_id"]).info.experiment_id])
    assert len(runs) == 1  # the restarted group wrote into the same MLflow run
    steps = [m.step for m in client.get_metric_history(summary["mlflow_run_id"], "loss")]
    assert max(steps) == 40
    redone = len(steps) - len(set(steps))
    run = client.get_run(summary["mlflow_run_id"])
    resumed_from = int(run.data.tags["resumed_from_step"])  # the new group restored a checkpoint, not step 0
    assert resumed_from >= 8 and resumed_from % 8 == 0
    # Only steps after the restored checkpoint were trained again. Rank 0 may run up to one interval ahead of the
    # last checkpoint that every rank has reported (what Ray registers), so the bound is two intervals.
    assert redone < 2 * cfg.train.checkpoint_every
    assert run.info.status == "FINISHED"

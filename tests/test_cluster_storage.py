"""The cluster path without a shared disk, end to end on loopback.

Real components only: an S3 API (moto's server), an `mlflow server` with proxied artifacts, and a Ray cluster of
a head with no CPUs plus a worker node, both started from a Python that cannot import distributed_ssl, so the
training workers run on the other node and only from the uploaded package. Data, run dirs, checkpoints and
sweeps live on S3; nothing of a run may appear on local disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pyarrow.fs as pafs
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import assert_quiet_console
from tests.local_ray_head import VENV_BIN, process_session, start_head, start_worker_node, stop_head
from tests.s3_server import S3Server, python_without_package

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "jobs" / "configs" / "image_simclr.yaml"
SWEEP = ROOT / "jobs" / "configs" / "sweep_image_simclr.yaml"
BUCKET = "dssl"
PORT, DASHBOARD_PORT = 6395, 8295
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)  # before any Ray node starts: every node inherits them
    server.create_bucket(BUCKET)
    yield server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


@pytest.fixture(scope="module")
def cluster(s3, tmp_path_factory):
    """A head without CPUs and a 6-CPU worker node; neither's Python has distributed_ssl."""
    root = tmp_path_factory.mktemp("cluster")
    python = python_without_package(root)
    head = start_head(PORT, num_cpus=0, log_dir=root, dashboard_port=DASHBOARD_PORT, python=python)
    nodes = [head]
    try:
        nodes.append(start_worker_node(head, num_cpus=6, log_dir=root, name="worker1", python=python))
        yield {"head": head, "python": python, "log_dir": root, "nodes": nodes}
    finally:
        for node in reversed(nodes):
            stop_head(node)


@pytest.fixture(scope="module")
def s3_digits(s3):
    """`dssl data sample image s3://dssl/digits`, run as a user would."""
    out = subprocess.run([f"{VENV_BIN}/dssl", "data", "sample", "image", f"s3://{BUCKET}/digits"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return f"s3://{BUCKET}/digits"


def _s3_fs() -> pafs.FileSystem:
    fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}/")
    return fs


def _files(prefix: str) -> set[str]:
    selector = pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True, allow_not_found=True)
    return {i.path[len(BUCKET) + len(prefix) + 2:] for i in _s3_fs().get_file_info(selector)
            if i.type == pafs.FileType.File}


def _overrides(digits: str, run: str, tracking_uri: str, **extra) -> list[str]:
    values = {"data.train": f"{digits}/train", "data.eval": digits, "run.dir": f"s3://{BUCKET}/{run}",
              "tracking.uri": tracking_uri, "tracking.experiment": "cluster-storage", "model.encoder": "vit_debug",
              "train.batch_size": 32, "train.epochs": 1, "train.log_every": 2, "eval.batch_size": 512,
              "run.max_failures": 0, "scaling.cpus_per_worker": 1}
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def _dssl(args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([f"{VENV_BIN}/dssl", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _dssl_here(args: list[str], capsys: pytest.CaptureFixture) -> subprocess.CompletedProcess:
    """`dssl ARGS` in this process, for commands that start no training: a fresh interpreter costs 2.5-3.5 s."""
    from distributed_ssl.cli import main

    capsys.readouterr()
    code = main(args)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def _registered_step(run: str) -> int:
    try:
        with _s3_fs().open_input_stream(f"{BUCKET}/{run}/train/checkpoint_manager_snapshot.json") as f:
            latest = json.loads(f.read()).get("latest_checkpoint_result")
    except (OSError, ValueError):
        return 0
    return int(latest["metrics"].get("global_step", 0)) if latest else 0


def _kill_a_worker_after_checkpoint(run: str, killed: list[int], stop: threading.Event, nodes: list) -> None:
    """SIGKILL a Ray Train worker of this cluster (of its nodes' sessions: not one of another test's Ray)."""
    sessions = {node.proc.pid for node in nodes}
    while not stop.is_set():
        if _registered_step(run) >= 8:
            for proc in psutil.process_iter(["cmdline"]):
                if "RayTrainWorker" in " ".join(proc.info["cmdline"] or []) and process_session(proc) in sessions:
                    proc.kill()
                    killed.append(proc.pid)
                    return
        time.sleep(0.5)


@pytest.mark.reliability(failure="a Ray Train worker on another node SIGKILLed after the first registered checkpoint, "
                                 "with data, run dir and checkpoints on S3 and tracking on an MLflow server",
                         response="Ray Train restarts the worker group from the last S3 checkpoint (run.max_failures) "
                                  "and the run finishes in the same MLflow run, redoing at most two checkpoint "
                                  "intervals; summary.json, encoder.pt, the views preview and config land on S3, "
                                  "metrics and artifacts on the server, nothing on local disk")
def test_train_on_s3_survives_a_killed_worker(cluster, s3_digits, mlflow_server, tmp_path, capsys, monkeypatch):
    run = "runs/a"
    args = ["train", str(RECIPE), *_overrides(s3_digits, run, mlflow_server.uri, **{
        "train.max_steps": 24, "train.epochs": 2, "train.checkpoint_every": 8, "run.max_failures": 2,
        "data.cache_raw_mb": 0,
        "data.shuffle": "full", "run.ray_address": cluster["head"].gcs_address})]
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_a_worker_after_checkpoint, args=(run, killed, stop, cluster["nodes"]))
    watcher.start()
    try:
        out = _dssl(args, cwd=tmp_path)
    finally:
        stop.set()
        watcher.join()
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    assert killed, "no worker was killed: the test did not exercise a failure"
    assert "preflight: 2 nodes reach" in out.stdout + out.stderr
    assert_quiet_console(out.stdout + out.stderr)  # the restart included: Ray's own account of it is in logs/
    assert "train step 24/24 epoch 2/2" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == f"s3://{BUCKET}/{run}/summary.json"

    files = _files(run)
    assert {"summary.json", "encoder.pt", "config.yaml", "run.json", "views.png", ".dssl-run"} <= files, files
    assert any(f.startswith("train/checkpoint_") for f in files)
    assert not list(tmp_path.rglob("*s3:*")) and not list(Path.cwd().glob("s3:*"))  # no local dir named after a URI
    with _s3_fs().open_input_stream(f"{BUCKET}/{run}/summary.json") as f:
        summary = json.loads(f.read())
    assert summary["steps"] == 24 and summary["run_dir"] == f"s3://{BUCKET}/{run}"
    assert summary["checkpoint"].startswith(f"s3://{BUCKET}/{run}/train/checkpoint_")
    assert summary["knn_top1"] > 0.2  # 10 classes: chance is 0.1

    client = MlflowClient(mlflow_server.uri)
    mlrun = client.get_run(summary["mlflow_run_id"])
    assert mlrun.info.status == "FINISHED" and int(mlrun.data.tags["resumed_from_step"]) >= 8
    assert {"knn_top1", "loss"} <= set(mlrun.data.metrics)
    assert {"encoder.pt", "summary.json", "config.yaml", "views.png"} <= {a.path for a in client.list_artifacts(
        mlrun.info.run_id)}
    steps = [m.step for m in client.get_metric_history(mlrun.info.run_id, "loss")]
    assert max(steps) == 24
    # Only steps after the restored checkpoint were trained again. Rank 0 may run up to one interval ahead of the
    # last checkpoint that every rank has reported (what Ray registers), so the bound is two intervals.
    resumed_from = int(mlrun.data.tags["resumed_from_step"])
    assert resumed_from % 8 == 0 and len(steps) - len(set(steps)) < 2 * 8

    # `dssl eval` and `dssl sync` read the run back from S3 (the buffer is empty: the server never went away).
    monkeypatch.chdir(tmp_path)
    evaluated = _dssl_here(["eval", f"s3://{BUCKET}/{run}", "--data", s3_digits], capsys)
    assert evaluated.returncode == 0 and "knn_top1" in evaluated.stdout, evaluated.stderr[-3000:]
    synced = _dssl_here(["sync", f"s3://{BUCKET}/{run}"], capsys)
    assert synced.returncode == 0 and "synced 0 buffered records" in synced.stdout, synced.stderr[-3000:]

    # `dssl train --resume` reads the config and the last checkpoint back from S3 and continues the same run.
    # (the finished run ended its epoch count at 2 when max_steps stopped it, so a longer run needs a third epoch)
    # With -v, the workers' own output comes back to the console.
    resumed = _dssl(["train", "--resume", f"s3://{BUCKET}/{run}", "train.max_steps=28", "train.epochs=3", "-v"],
                    cwd=tmp_path)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert "RayTrainWorker" in resumed.stdout + resumed.stderr
    assert {"logs/driver.log", "logs/rank0.log", "logs/rank1.log"} <= _files(run)
    with _s3_fs().open_input_stream(f"{BUCKET}/{run}/summary.json") as f:
        after = json.loads(f.read())
    assert after["steps"] == 28 and after["mlflow_run_id"] == summary["mlflow_run_id"]


def test_submit_from_an_empty_directory_runs_from_the_upload(cluster, s3_digits, mlflow_server, tmp_path, capsys,
                                                            monkeypatch):
    """The nodes' Python has no distributed_ssl: the job runs only because the upload carries the whole package."""
    empty = tmp_path / "empty"
    empty.mkdir()
    run = "runs/submitted"
    overrides = _overrides(s3_digits, run, mlflow_server.uri, **{"train.max_steps": 4})
    # options may stand between the overrides
    out = _dssl(["submit", str(RECIPE), *overrides[:3], "--address", cluster["head"].dashboard_url, *overrides[3:],
                 "--wait", "--timeout", "600"], cwd=empty)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    job_id = out.stdout.split()[1]
    assert f"job {job_id}: SUCCEEDED" in out.stdout
    assert {"summary.json", "encoder.pt"} <= _files(run)
    assert list(empty.iterdir()) == []
    with _s3_fs().open_input_stream(f"{BUCKET}/{run}/summary.json") as f:
        summary = json.loads(f.read())
    mlrun = MlflowClient(mlflow_server.uri).get_run(summary["mlflow_run_id"])
    assert mlrun.info.status == "FINISHED" and mlrun.info.run_name == job_id and "knn_top1" in mlrun.data.metrics

    # The job commands, against the same cluster: status, logs (the job's console), list; an unknown id is an error.
    address = cluster["head"].dashboard_url
    monkeypatch.chdir(empty)
    status = _dssl_here(["jobs", "status", job_id, "--address", address], capsys)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "SUCCEEDED"
    logs = _dssl_here(["jobs", "logs", job_id, "--address", address], capsys)
    assert logs.returncode == 0 and "knn_top1" in logs.stdout and f"s3://{BUCKET}/{run}/summary.json" in logs.stdout
    assert_quiet_console(logs.stdout)  # the job's driver shows our console too
    listed = _dssl_here(["jobs", "list", "--address", address], capsys)
    assert listed.returncode == 0 and job_id in listed.stdout
    missing = _dssl_here(["jobs", "status", "no-such-job", "--address", address], capsys)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert list(empty.iterdir()) == []


def test_sweep_trials_live_on_s3(cluster, s3_digits, mlflow_server, tmp_path):
    """One trial: what lives where does not depend on how many there are (the local sweep tests run several)."""
    sweep = "sweeps/a"
    out = _dssl(["tune", str(SWEEP), *_overrides(s3_digits, sweep, mlflow_server.uri, **{
        "train.max_steps": 3, "scaling.num_workers": 1, "tune.search": "grid", "tune.scheduler": "none",
        "tune.num_samples": 1, "tune.space": "{optim.lr: 'grid([0.002])'}",
        "run.ray_address": cluster["head"].gcs_address})], cwd=tmp_path)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    files = _files(sweep)
    trial_summaries = [f for f in files if f.startswith("trials/") and f.endswith("/summary.json")]
    assert len(trial_summaries) == 1, files
    assert {"trials.csv", "best_config.yaml", "sweep_config.yaml"} <= files
    with _s3_fs().open_input_stream(f"{BUCKET}/{sweep}/best_config.yaml") as f:
        assert "lr: 0.002" in f.read().decode()  # the swept value, not the config's 3e-3
    assert not list(tmp_path.rglob("*s3:*"))


def test_cluster_refuses_local_tracking_and_an_unreachable_node(cluster, s3_digits, tmp_path):
    """Both fail before training starts, exit 2, naming the URI / node and the reason."""
    base = _overrides(s3_digits, "runs/refused", "x", **{"run.ray_address": cluster["head"].gcs_address})
    local_store = [a for a in base if not a.startswith("tracking.uri=")] + [f"tracking.uri=sqlite:///{tmp_path}/m.db"]
    out = _dssl(["train", str(RECIPE), *local_store], cwd=tmp_path, timeout=300)
    assert out.returncode == 2 and "is a store on one machine's disk" in out.stderr and "mlflow server" in out.stderr
    assert "Traceback" not in out.stderr

    # A node whose environment points at no S3 endpoint cannot reach the run dir: the preflight names it.
    bad = start_worker_node(cluster["head"], num_cpus=1, log_dir=cluster["log_dir"], name="cut-off",
                            env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, python=cluster["python"])
    try:
        remote_store = [a for a in base if not a.startswith("tracking.uri=")] + ["tracking.uri=http://127.0.0.1:9"]
        out = _dssl(["train", str(RECIPE), *remote_store, "tracking.retries=0"], cwd=tmp_path, timeout=300)
    finally:
        stop_head(bad)
    assert out.returncode == 2, (out.stdout + out.stderr)[-3000:]
    assert "preflight" in out.stderr and f"s3://{BUCKET}/runs/refused" in out.stderr and "cannot" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.reliability(failure="data.train or run.dir in an S3 bucket that does not exist",
                         response="exit 2 before Ray starts, naming the URI and the reason")
def test_missing_bucket_fails_before_training(s3, s3_digits, tmp_path, capsys, monkeypatch):
    import ray

    from distributed_ssl.cli import main

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start for a missing bucket"))
    assert main(["train", str(RECIPE), "data.train=s3://no-such-bucket/digits/train", f"run.dir={tmp_path}/r"]) == 2
    assert "s3://no-such-bucket/digits/train" in capsys.readouterr().err
    args = _overrides(s3_digits, "x", "http://127.0.0.1:9")
    args = [a for a in args if not a.startswith("run.dir=")] + ["run.dir=s3://no-such-bucket/runs/a"]
    assert main(["train", str(RECIPE), *args]) == 2
    err = capsys.readouterr().err
    assert "run.dir=s3://no-such-bucket/runs/a cannot be written" in err and "bucket" in err.lower()


def test_prune_reads_and_writes_object_storage(s3, s3_digits, tmp_path):
    """`dssl data prune` from S3 shards into an S3 folder: the kept ids and the scores land there."""
    from distributed_ssl.cli import main
    from distributed_ssl.data.kept_ids import load_kept_ids

    out = f"s3://{BUCKET}/pruned"
    assert main(["data", "prune", f"{s3_digits}/train", out, "--strategy", "random", "--keep", "0.5"]) == 0
    assert {"kept_ids.json", "scores.parquet"} <= _files("pruned")
    kept = load_kept_ids(out)
    assert kept.num_kept == round(0.5 * 1438) and kept.source == f"{s3_digits}/train"


def _publish_on_s3(src: str, dst: str, count: int) -> None:
    """dst holds the first `count` shards of src (object copies) and their manifest: "new data arriving"."""
    from dataclasses import asdict

    from distributed_ssl.data.manifest import MANIFEST_NAME, Manifest, load_manifest

    fs = _s3_fs()
    manifest = load_manifest(src)
    shards = manifest.shards[:count]
    for shard in shards:
        fs.copy_file(f"{src[5:]}/{shard.file}", f"{dst[5:]}/{shard.file}")
    subset = Manifest(**{**asdict(manifest), "shards": shards, "num_records": sum(s.num_records for s in shards)})
    with fs.open_output_stream(f"{dst[5:]}/{MANIFEST_NAME}") as f:
        f.write(Manifest.to_json(subset).encode())


@pytest.mark.reliability(failure="scheduled retraining with retrain.root and data on S3, workers on another node",
                         response="passes, history, lock and the champion's weights live on S3; the second pass "
                                  "warm-starts from the champion read there; nothing is written to local disk")
def test_retrain_keeps_its_state_on_s3(cluster, s3_digits, mlflow_server, tmp_path):
    from distributed_ssl.retrain.history import read_records

    incoming, root = f"s3://{BUCKET}/incoming", f"s3://{BUCKET}/retrain"
    overrides = [a for a in _overrides(s3_digits, "unused", mlflow_server.uri, **{
        "train.max_steps": 4, "scaling.num_workers": 1, "retrain.root": root, "retrain.tolerance": 1.0,
        "retrain.model_name": "s3-encoder", "run.ray_address": cluster["head"].gcs_address})
        if not a.startswith("data.train=")] + [f"data.train={incoming}"]
    for shards, expected in ((2, "version 1 promoted"), (3, "version 2 promoted")):
        _publish_on_s3(f"{s3_digits}/train", incoming, shards)
        out = _dssl(["retrain", str(RECIPE), *overrides], cwd=tmp_path)
        assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
        assert expected in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]
    history = read_records(f"{root}/history.jsonl")
    assert [(r["status"], r["version"], r["champion_version"]) for r in history] == [
        ("promoted", 1, None), ("promoted", 2, 1)]
    second = history[1]["pass_id"]
    files = _files("retrain")
    assert {f"passes/{second}/champion/encoder.pt", f"passes/{second}/run/encoder.pt"} <= files, files
    assert ".dssl-lock" not in files  # the lease is released when the pass ends
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(history[1]["run_id"])
    assert run.data.tags["dssl.warm_start_version"] == "1"
    assert list(tmp_path.iterdir()) == []

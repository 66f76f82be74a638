"""Scheduled retraining: data fingerprints, the promotion rule, the lock, and real passes against a registry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from distributed_ssl.cli import main
from distributed_ssl.config import ConfigError, load_config
from distributed_ssl.data.manifest import MANIFEST_NAME, Manifest, load_manifest
from distributed_ssl.retrain import retrain_pass
from distributed_ssl.retrain.data_fingerprint import DataSnapshot, snapshot
from distributed_ssl.retrain.history import append_record, read_records
from distributed_ssl.retrain.pass_lock import PassBusy, pass_lock
from distributed_ssl.retrain.promotion import decide
from distributed_ssl.retrain.registry import TAG
from distributed_ssl.retrain.scheduler import parse_period, run_every
from tests.conftest import assert_quiet_console, tiny_overrides

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "jobs" / "configs" / "image_simclr.yaml"


def test_promotion_rule():
    assert decide("knn_top1", 0.5, None, 0.01).promote
    assert decide("knn_top1", 0.795, 0.80, 0.01).promote  # within tolerance
    worse = decide("knn_top1", 0.78, 0.80, 0.01)
    assert not worse.promote and "below the floor 0.7900" in worse.reason
    assert not decide("knn_top1", 0.85, 0.80, -0.1).promote  # negative tolerance demands a real gain
    assert decide("knn_top1", 0.91, 0.80, -0.1).promote


def test_snapshot_sees_new_and_rewritten_shards():
    a = DataSnapshot("x", (("s0", "aaa", 10), ("s1", "bbb", 10)))
    assert a.new_since(None) == ["s0", "s1"]
    assert a.new_since(a) == []
    rewritten = DataSnapshot("x", (("s0", "aaa", 10), ("s1", "ccc", 10)))
    assert rewritten.new_since(a) == ["s1"] and rewritten.fingerprint != a.fingerprint
    renamed = DataSnapshot("y", (("t0", "aaa", 10), ("t1", "bbb", 10)))
    assert renamed.new_since(a) == [] and renamed.fingerprint == a.fingerprint
    assert DataSnapshot.from_json(a.to_json()) == a


def test_lock_turns_the_second_holder_away(tmp_path):
    lock = tmp_path / "retrain.lock"
    with pass_lock(lock):
        with pytest.raises(PassBusy, match=rf"pid {os.getpid()} on .* since .*lock {lock}"):
            with pass_lock(lock):
                pass
    with pass_lock(lock):  # released on exit
        pass


def test_history_round_trip_and_bad_line(tmp_path):
    path = tmp_path / "h.jsonl"
    append_record(path, {"status": "skipped"})
    append_record(path, {"status": "promoted", "version": 1})
    assert [r["status"] for r in read_records(path)] == ["skipped", "promoted"]
    path.write_text(path.read_text() + "{half\n")
    with pytest.raises(ValueError, match=r"h\.jsonl:3"):
        read_records(path)


def test_period_parsing_and_schedule_loop():
    assert parse_period("6h") == 21600 and parse_period("30m") == 1800 and parse_period("45") == 45
    for bad in ("0h", "6x", "-1m", ""):
        with pytest.raises(ValueError, match="--every"):
            parse_period(bad)
    slept: list[float] = []
    results: list[str] = []

    def failing_load():
        raise RuntimeError("tracking server down")

    # A failing pass is reported and the schedule goes on.
    assert run_every(failing_load, 60, max_passes=3, on_result=lambda r: results.append(r.status),
                     sleep=slept.append) == 3
    assert results == ["failed"] * 3 and len(slept) == 2 and all(0 < s <= 60 for s in slept)


def test_state_paths_default_to_one_shared_store_under_root(tmp_path):
    paths = retrain_pass.retrain_paths(load_config(None, {"retrain.root": str(tmp_path / "r")}))
    assert paths.tracking_uri == f"sqlite:///{tmp_path / 'r' / 'mlflow.db'}"
    assert paths.history == str(tmp_path / "r" / "history.jsonl") and paths.lock == str(tmp_path / "r" / "retrain.lock")
    with pytest.raises(ConfigError, match="tracking.uri=/x/mlruns: the model registry needs a database"):
        retrain_pass.retrain_paths(load_config(None, {"tracking.uri": "/x/mlruns"}))


def _publish(src: Path, dst: Path, count: int) -> None:
    """Make dst a shard folder holding the first `count` shards of src: 'new data arriving'."""
    manifest = load_manifest(str(src))
    dst.mkdir(parents=True, exist_ok=True)
    shards = manifest.shards[:count]
    for s in shards:
        if not (dst / s.file).exists():
            shutil.copy2(src / s.file, dst / s.file)
    subset = Manifest(**{**asdict(manifest), "shards": shards, "num_records": sum(s.num_records for s in shards)})
    (dst / MANIFEST_NAME).write_text(Manifest.to_json(subset))


@pytest.mark.slow
def test_retrain_passes_promote_skip_reject_and_lock(ray_cluster, digits, tmp_path, monkeypatch, capsys):
    assert len(load_manifest(str(digits / "train")).shards) >= 4
    incoming = tmp_path / "incoming"
    root = tmp_path / "retrain"
    overrides = tiny_overrides(digits, tmp_path / "unused", **{
        "data.train": str(incoming), "train.max_steps": 6, "train.epochs": 1, "scaling.num_workers": 1,
        "retrain.root": str(root), "retrain.tolerance": 0.2, "run.ray_num_cpus": 4,
        "retrain.model_name": f"enc-{tmp_path.name}"})  # the session's shared tracking store: a name of its own

    def cfg(*extra: str):
        return load_config(RECIPE, overrides + list(extra))

    # Pass 1 (a separate `dssl retrain` process) trains from scratch; a pass started meanwhile is turned away.
    _publish(digits / "train", incoming, 2)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    first = subprocess.Popen([sys.executable, "-m", "distributed_ssl.cli", "retrain", str(RECIPE), *overrides],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock = root / "retrain.lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
        time.sleep(0.2)
    assert main(["retrain", str(RECIPE), *overrides]) == retrain_pass.EX_TEMPFAIL
    assert f"another retrain pass is running (pid {first.pid}" in capsys.readouterr().err
    out, _ = first.communicate(timeout=400)
    assert first.returncode == 0, out[-4000:]
    assert "version 1 promoted: no champion yet" in out
    # The console is ours: progress and eval lines, none of Ray's, DeepSpeed's or torch's output (that is in logs/).
    assert_quiet_console(out)
    assert " step 6/6 epoch 1/1 loss" in out and "epoch 1 (step 6): kNN" in out, out[-3000:]
    pass_dir = next((root / "passes").iterdir())
    logs = {p.name: p.read_text() for p in (pass_dir / "run" / "logs").iterdir()}
    assert set(logs) == {"driver.log", "rank0.log"} and "step 6/6 loss" in logs["rank0.log"]

    # Pass 2: the same shards → nothing runs.
    assert main(["retrain", str(RECIPE), *overrides]) == 0
    assert "no new data" in capsys.readouterr().out

    # Pass 3: a new shard → warm start from version 1, promoted within tolerance.
    _publish(digits / "train", incoming, 3)
    third = retrain_pass.run_pass(cfg("tracking.log_model=true"))  # this version carries an MLflow model
    assert (third.status, third.version, third.champion_version) == ("promoted", 2, 1), third

    # A pass that crashes mid-training leaves the champion where it was.
    _publish(digits / "train", incoming, 4)

    def crash(*_, **__):
        raise RuntimeError("worker node lost")

    with monkeypatch.context() as m:
        m.setattr(retrain_pass, "run_training", crash)
        with pytest.raises(RuntimeError, match="worker node lost"):
            retrain_pass.run_pass(cfg())

    # Pass 4: a model forced to be "worse" (it must beat the champion by 1.0) is registered, not promoted.
    fourth = retrain_pass.run_pass(cfg("retrain.tolerance=-1.0"))
    assert (fourth.status, fourth.version, fourth.champion_version) == ("rejected", 3, 2), fourth
    assert "champion kept" in fourth.reason

    # The registry and the history file tell the same story.
    name = f"enc-{tmp_path.name}"
    client = MlflowClient(retrain_pass.retrain_paths(cfg()).tracking_uri)
    versions = {int(v.version): v for v in client.search_model_versions(f"name='{name}'")}
    assert sorted(versions) == [1, 2, 3]
    assert int(client.get_model_version_by_alias(name, "champion").version) == 2
    # The champion is an MLflow model: `models:/NAME@champion` loads and embeds (width of vit_debug).
    import mlflow.pyfunc
    import numpy as np

    mlflow.set_tracking_uri(retrain_pass.retrain_paths(cfg()).tracking_uri)
    embeddings = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(
        np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32))
    from distributed_ssl.models.registry import VIT_FLAVOURS

    assert np.asarray(embeddings).shape == (3, VIT_FLAVOURS["vit_debug"][0])
    assert np.isfinite(np.asarray(embeddings)).all()
    history = read_records(root / "history.jsonl")
    assert [r["status"] for r in history] == ["promoted", "skipped", "promoted", "failed", "rejected"]
    for record in history:
        if record["version"] is not None:
            tags = versions[record["version"]].tags
            assert tags[TAG + "decision"] == record["status"]
            assert tags[TAG + "reason"] == record["reason"]
            assert float(tags[TAG + "knn_top1"]) == pytest.approx(record["metric"], abs=1e-6)
            assert tags[TAG + "data_fingerprint"] == record["data_fingerprint"]
    assert history[3]["champion_version"] == 2 and "champion untouched" in history[3]["reason"]
    assert versions[2].tags[TAG + "champion_version"] == "1"
    assert client.get_run(versions[2].run_id).data.tags[TAG + "warm_start_version"] == "1"
    assert client.get_run(versions[3].run_id).data.tags[TAG + "decision"] == "rejected"
    assert snapshot(str(incoming)).fingerprint == versions[3].tags[TAG + "data_fingerprint"]
    with capsys.disabled():
        print("\n" + "\n".join(json.dumps({k: r[k] for k in ("status", "version", "metric", "champion_metric")})
                               for r in history))

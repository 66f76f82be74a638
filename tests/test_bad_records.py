"""Corrupt records are counted and skipped, never trained on, and too many stop the pipeline with a clear error."""

import json
from pathlib import Path

import pytest
import ray

from distributed_ssl.config import load_config
from distributed_ssl.data.bad_records import collect_bad_records, ledger_for_run, ledger_name
from distributed_ssl.data.manifest import load_manifest
from distributed_ssl.methods.registry import view_spec_for
from distributed_ssl.modalities.train_dataset import build_train_dataset


def _dataset(path, fraction, run_id):
    cfg = load_config(None, [f"data.train={path}", f"data.max_bad_fraction={fraction}"])
    ledger = ledger_for_run(run_id, load_manifest(str(path)).num_records, fraction)
    return build_train_dataset(cfg, view_spec_for(cfg), ledger=ledger), ledger


@pytest.mark.reliability(failure="undecodable records in the training shards (truncated PNG, random bytes, empty)",
                         response="skipped, never trained on, listed with id, shard and reason in the run's "
                                  "bad-record ledger (RUN_DIR/bad_records.jsonl)")
def test_bad_records_are_skipped_and_reported(ray_cluster, digits_with_bad):
    ds, ledger = _dataset(digits_with_bad, 0.01, "skip")
    total = load_manifest(str(digits_with_bad)).num_records
    assert ds.count() == total - 3
    report = collect_bad_records(ledger)
    assert sorted(r["id"] for r in report) == ["corrupt-0", "corrupt-1", "corrupt-2"]
    assert all(r["source"].endswith(".parquet") and r["reason"] for r in report)
    with pytest.raises(ValueError):  # collecting removed the ledger actor
        ray.get_actor(ledger.name)
    assert collect_bad_records(ledger) == []


def test_a_clean_pass_makes_no_ledger_and_a_new_attempt_starts_from_zero(ray_cluster, digits, digits_with_bad):
    """The ledger is an actor, a process of its own: made by the first bad record, not by every run."""
    ds, ledger = _dataset(digits / "train", 0.01, "clean")
    assert ds.count() == load_manifest(str(digits / "train")).num_records
    with pytest.raises(ValueError):
        ray.get_actor(ledger.name)
    ds, ledger = _dataset(digits_with_bad, 0.01, "again")
    ds.count()
    assert len(ray.get(ray.get_actor(ledger.name).report.remote())) == 3
    _, ledger = _dataset(digits_with_bad, 0.01, "again")  # a retry of the same run id starts from zero
    assert collect_bad_records(ledger) == []


@pytest.mark.reliability(failure="more undecodable records than data.max_bad_fraction allows",
                         response="the pipeline stops with BadDataError naming the count, the limit and a record")
def test_too_many_bad_records_stop_the_job(ray_cluster, digits_with_bad):
    ds, _ = _dataset(digits_with_bad, 0.001, "fail")  # limit: 1 bad record of 1441
    with pytest.raises(Exception, match="max_bad_fraction"):
        ds.count()


@pytest.mark.reliability(failure="undecodable records in data.eval (the labeled probe set)",
                         response="decoded once on the driver before any worker starts: skipped and counted within "
                                  "data.max_bad_fraction, else exit 2 naming a record; Ray never starts")
def test_corrupt_eval_records_are_skipped_or_fail_before_any_worker(digits, digits_with_bad, tmp_path, capsys,
                                                                     monkeypatch):
    from distributed_ssl.cli import main
    from distributed_ssl.evaluation.labeled_set import load_labeled
    from tests.conftest import tiny_overrides

    cfg = load_config(None, [f"data.eval={digits_with_bad}", "data.max_bad_fraction=0.01"])
    split = load_labeled(str(digits_with_bad), cfg)["all"]
    assert split.skipped == 3 and len(split.labels) == load_manifest(str(digits_with_bad)).num_records - 3

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start for a corrupt eval set"))
    args = tiny_overrides(digits, tmp_path / "run", **{"data.eval": str(digits_with_bad),
                                                       "data.max_bad_fraction": 0.0})
    recipe = Path(__file__).resolve().parents[1] / "jobs" / "configs" / "image_simclr.yaml"
    assert main(["train", str(recipe), *args]) == 2
    err = capsys.readouterr().err
    assert "cannot be decoded" in err and "corrupt-" in err and str(digits_with_bad) in err


def _failure_policy_retries() -> int:
    """How many times this Ray session's Train controllers have decided to restart a worker group."""
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    return sum(path.read_text(errors="replace").count("[FailurePolicy] RETRY")
               for path in session.glob("logs/train/ray-train-*controller*.log"))


@pytest.mark.slow
@pytest.mark.reliability(failure="more undecodable training records than data.max_bad_fraction allows, with "
                                 "run.max_failures=2",
                         response="a DatasetError (exit 2) naming the limit; the failure policy raises at once: "
                                  "the worker group is never restarted to train into the same records again")
def test_bad_record_limit_is_not_retried_as_a_crash(ray_cluster, digits, digits_with_bad, tmp_path):
    from distributed_ssl.data.manifest import DatasetError
    from distributed_ssl.engine.data_errors import FATAL_FILE
    from distributed_ssl.launch.trainer import run_training
    from tests.conftest import tiny_overrides

    run_dir = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(digits, run_dir, **{
        "data.train": str(digits_with_bad), "data.max_bad_fraction": 0.001, "run.max_failures": 2,
        "train.max_steps": 20}))
    retries_before = _failure_policy_retries()
    with pytest.raises(DatasetError, match="max_bad_fraction"):
        run_training(cfg)
    assert _failure_policy_retries() == retries_before  # Ray's default policy would restart twice
    assert (run_dir / FATAL_FILE).is_file() and "max_bad_fraction" in (run_dir / FATAL_FILE).read_text()
    assert not (run_dir / "summary.json").exists()
    from mlflow.tracking import MlflowClient

    state = json.loads((run_dir / "run.json").read_text())
    run = MlflowClient(state["tracking_uri"]).get_run(state["mlflow_run_id"])
    assert run.info.status == "FAILED" and "resumed_from_step" not in run.data.tags
    with pytest.raises(ValueError):  # the failed run's ledger (a detached actor) does not outlive it
        ray.get_actor(ledger_name(state["mlflow_run_id"]))

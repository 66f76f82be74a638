"""Corrupt records are counted and skipped, never trained on, and too many stop the pipeline with a clear error."""

import pytest
import ray

from distributed_ssl.config import load_config
from distributed_ssl.data.bad_records import create_ledger, ledger_name
from distributed_ssl.data.manifest import load_manifest
from distributed_ssl.data.pipeline import build_train_dataset
from distributed_ssl.methods.registry import view_spec_for


def _dataset(path, fraction, run_id):
    cfg = load_config(None, [f"data.train={path}", f"data.max_bad_fraction={fraction}"])
    ledger = create_ledger(run_id, load_manifest(str(path)).num_records, fraction)
    return build_train_dataset(cfg, view_spec_for(cfg), ledger=ledger_name(run_id)), ledger


@pytest.mark.reliability(failure="undecodable records in the training shards (truncated PNG, random bytes, empty)",
                         response="skipped, never trained on, listed with id, shard and reason in the run's "
                                  "bad-record ledger (RUN_DIR/bad_records.jsonl)")
def test_bad_records_are_skipped_and_reported(ray_cluster, digits_with_bad):
    ds, ledger = _dataset(digits_with_bad, 0.01, "skip")
    total = load_manifest(str(digits_with_bad)).num_records
    assert ds.count() == total - 3
    report = ray.get(ledger.report.remote())
    assert sorted(r["id"] for r in report) == ["corrupt-0", "corrupt-1", "corrupt-2"]
    assert all(r["source"].endswith(".parquet") and r["reason"] for r in report)


@pytest.mark.reliability(failure="more undecodable records than data.max_bad_fraction allows",
                         response="the pipeline stops with BadDataError naming the count, the limit and a record")
def test_too_many_bad_records_stop_the_job(ray_cluster, digits_with_bad):
    ds, _ = _dataset(digits_with_bad, 0.001, "fail")  # limit: 1 bad record of 1441
    with pytest.raises(Exception, match="max_bad_fraction"):
        ds.count()

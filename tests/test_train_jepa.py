"""A real 2-worker JEPA run: multi-block masks from Ray Data, EMA target encoder under DeepSpeed, and the probes
and collapse metrics that every run reports (summary.json, MLflow per eval epoch, `dssl eval`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from distributed_ssl.cli import main
from distributed_ssl.config import load_config
from distributed_ssl.launch.trainer import run_training
from tests.conftest import tiny_overrides

RECIPES = Path(__file__).resolve().parents[1] / "jobs" / "configs"
PROBE_FIELDS = {"knn_top1", "knn_top1_random_init", "linear_top1", "linear_top1_random_init", "embedding_std",
                "effective_rank", "effective_rank_fraction", "collapsed"}


@pytest.mark.slow
def test_jepa_trains_and_reports_probes_and_collapse_metrics(ray_cluster, digits, tmp_path):
    run_dir = tmp_path / "jepa"
    cfg = load_config(RECIPES / "image_jepa.yaml",
                      tiny_overrides(digits, run_dir, **{"train.max_steps": 26, "train.epochs": 2,
                                                         "optim.lr": 2e-3, "optim.warmup_fraction": 0.0,
                                                         "method.output_encoder": "teacher"}))
    summary = run_training(cfg)
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["method"] == "jepa" and on_disk["steps"] == 26
    assert PROBE_FIELDS <= set(on_disk) and all(on_disk[k] is not None for k in PROBE_FIELDS), on_disk
    assert on_disk["linear_top1"] > 0.3 and on_disk["linear_top1_random_init"] > 0.3  # chance is 0.1
    assert 0.0 < on_disk["embedding_std"] < 1.0 and 1.0 <= on_disk["effective_rank"] <= 32
    assert on_disk["collapsed"] is False and on_disk["collapse_warning"] is None

    client = MlflowClient(summary["tracking_uri"])
    run_id = summary["mlflow_run_id"]
    loss = [m.value for m in sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)]
    assert len(loss) >= 4 and sum(loss[-2:]) / 2 < sum(loss[:2]) / 2, loss
    for name in ("embedding_std", "effective_rank", "linear_top1", "knn_top1"):  # one point per eval epoch
        assert len(client.get_metric_history(run_id, name)) == 2, name
    assert {"context_fraction", "target_fraction", "momentum"} <= set(client.get_run(run_id).data.metrics)

    # dssl eval reports the same probes of the saved encoder: encoder.pt holds the encoder the run probed, JEPA's
    # EMA target encoder (method.output_encoder=teacher, as image_jepa_photos.yaml has it).
    assert main(["eval", str(run_dir), "--data", str(digits), "--out", str(tmp_path / "eval.json")]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert abs(result["knn_top1"] - on_disk["knn_top1"]) < 0.01, (result["knn_top1"], on_disk["knn_top1"])
    assert abs(result["linear_top1"] - on_disk["linear_top1"]) < 0.02
    assert abs(result["effective_rank"] - on_disk["effective_rank"]) < 0.5

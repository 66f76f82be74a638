"""Ray Tune sweeps: search-space errors, a real ASHA sweep with MLflow parent/child runs, and resume."""

import csv
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient

from distributed_ssl.config import ConfigError, load_config
from distributed_ssl.config.search_space import parse_expression
from distributed_ssl.launch.sweep import build_param_space, run_sweep
from tests.conftest import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("expr, reason", [
    ("unif(0.1, 0.2)", "unknown distribution 'unif'"),
    ("uniform(0.5, 0.1)", "low < high"),
    ("loguniform(0, 1)", "positive"),
    ("choice(0.5)", "non-empty list"),
    ("uniform(0.1)", "takes 2 argument"),
    ("uniform(__import__('os'), 1)", "not literals"),
])
def test_bad_expression_fails_with_reason(expr, reason, tmp_path):
    with pytest.raises(ValueError, match=reason):
        parse_expression(expr)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tune": {"space": {"mask.ratio": expr}}}))
    with pytest.raises(ConfigError, match=r"tune.space\['mask.ratio'\]"):
        load_config(path)


MAE = {"method.name": "mae"}


def test_space_keys_and_values_are_checked_against_the_config():
    with pytest.raises(ConfigError, match=r"mask.ratio is not a key of mask for method simclr \(it belongs to mae\)"):
        build_param_space(load_config(None, {"tune.space": {"mask.ratio": "uniform(0.5, 0.9)"}}))
    with pytest.raises(ConfigError, match=r"method.temperature is not a key of method byol \(it belongs to simclr\)"):
        build_param_space(load_config(None, {"method.name": "byol",
                                             "tune.space": {"method.temperature": "uniform(0.1, 0.3)"}}))
    with pytest.raises(ConfigError, match=r"mask.ratios[\s\S]*unknown key"):
        build_param_space(load_config(None, {**MAE, "tune.space": {"mask.ratios": "uniform(0.1, 0.2)"}}))
    with pytest.raises(ConfigError, match=r"mask.ratio"):
        build_param_space(load_config(None, {**MAE, "tune.space": {"mask.ratio": "uniform(0.5, 1.5)"}}))
    with pytest.raises(ConfigError, match="grid search needs"):
        build_param_space(load_config(None, {**MAE, "tune.space": {"mask.ratio": "uniform(0.5, 0.9)"},
                                             "tune.search": "grid"}))
    space = build_param_space(load_config(None, {**MAE, "tune.space": {"mask.ratio": "choice([0.5, 0.75])"},
                                                 "tune.search": "grid"}))
    assert space["mask.ratio"] == {"grid_search": [0.5, 0.75]}


def _sweep_cfg(digits, run_dir, space=None, **extra):
    values = {"train.epochs": 2, "train.checkpoint_every": 1000, "scaling.num_workers": 2, "train.max_steps": "null",
              "tune.num_samples": 4, "tune.grace_period": 1, "tune.reduction_factor": 2, **extra}
    over = tiny_overrides(digits, run_dir, **values)
    space = space or {"augment.crop_scale_min": "uniform(0.08, 0.5)", "method.temperature": "loguniform(0.05, 0.5)"}
    return load_config(ROOT / "jobs" / "configs" / "sweep_image_simclr.yaml", over + [f"tune.space={space}"])


@pytest.mark.slow
def test_asha_sweep_logs_children_and_writes_best_config(ray_cluster, digits, tmp_path, caplog):
    sweep_dir = tmp_path / "sweep"
    # One trial with a sound learning rate (1e-3), then one whose rate wrecks the random-init features within an
    # epoch (0.3: AdamW moves every weight by about the rate each step): it reports its epoch-1 kNN far below the
    # first's, so ASHA (reduction factor 2, grace period 1 epoch; its cut-off at a rung with one result is that
    # result) stops it there. (A rate too small to move would score the random init's kNN, which one epoch of a
    # sound rate does not reliably beat on this tiny encoder.)
    cfg = _sweep_cfg(digits, sweep_dir, space={"optim.lr": "grid([1e-3, 0.3])"},
                     **{"tune.search": "grid", "tune.num_samples": 1, "tune.reduction_factor": 2,
                        "tune.max_concurrent_trials": 1, "scaling.num_workers": 1})
    with caplog.at_level(logging.INFO, logger="distributed_ssl.sweep"):
        report = run_sweep(cfg)
    assert report["trials"] == 2 and report["errors"] == 0
    assert report["stopped_early"] == 1, report["table"]
    # the console's lines: each trial's start with its values, its epochs' objective, and how it ended
    lines = [r.getMessage() for r in caplog.records if r.name == "distributed_ssl.sweep"]
    assert sum(" started " in line and "optim.lr=" in line for line in lines) == 2, lines
    assert any(" epoch 1: knn_top1 " in line for line in lines), lines
    assert sum(line.endswith("trials ended)") for line in lines) == 2, lines
    assert sum("stopped early by the scheduler" in line for line in lines) == report["stopped_early"], lines
    rows = list(csv.DictReader(open(sweep_dir / "trials.csv")))
    assert len(rows) == 2 and {"optim.lr", "knn_top1_best", "stop_reason"} <= set(rows[0])
    stops = {float(r["optim.lr"]): r["stop_reason"] for r in rows}
    assert stops == {1e-3: "completed", 0.3: "stopped_early"}, rows

    client = MlflowClient(cfg.tracking.uri)
    parent = client.get_run(report["mlflow_run_id"])
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 2
    for child in children:
        assert float(child.data.params["optim.lr"]) in {1e-3, 0.3}
        assert child.data.tags["stop_reason"] in {"completed", "stopped_early"}
        assert "knn_top1" in child.data.metrics
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best_config.yaml", "trials.csv", "objective_vs_params.png", "learning_curves.png"} <= artifacts

    best = load_config(report["best_config"])
    assert best.optim.lr == pytest.approx(report["best_overrides"]["optim.lr"])
    assert best.tune.space == {}


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_rerunning_finished_trials(ray_cluster, digits, tmp_path):
    sweep_dir = tmp_path / "sweep"
    # Optuna's TPE proposes the trials: its state must survive the kill with the rest of the sweep.
    cfg = _sweep_cfg(digits, sweep_dir, **{"tune.num_samples": 2, "tune.scheduler": "none", "train.epochs": 1,
                                           "tune.max_concurrent_trials": 1, "tune.search": "optuna",
                                           "scaling.num_workers": 1})
    from distributed_ssl.config import save_config

    save_config(cfg, tmp_path / "sweep.yaml")
    proc = subprocess.Popen([sys.executable, "-m", "distributed_ssl.cli", "tune", str(tmp_path / "sweep.yaml")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    trials = sweep_dir / "trials"
    deadline = time.time() + 400
    # Wait until the first trial has finished and the second has started, so the sweep is truly mid-way.
    while time.time() < deadline and not (list(trials.glob("*/summary.json")) and len(list(trials.glob("*/run.json"))) >= 2):
        time.sleep(1)
    time.sleep(5)
    family = [proc.pid] + [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    for pid in family:  # the driver and the local Ray it started die mid-sweep
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime for p in trials.glob("*/summary.json")}
    assert len(finished) == 1

    report = run_sweep(load_config(sweep_dir / "sweep_config.yaml"), resume=True)
    assert report["trials"] == 2 and report["errors"] == 0
    after = {p.parent.name: p.stat().st_mtime for p in trials.glob("*/summary.json")}
    assert len(after) == 2
    for name, mtime in finished.items():
        assert after[name] == mtime  # the finished trial was not trained again

    rows = list(csv.DictReader(open(sweep_dir / "trials.csv")))
    scales = [float(r["augment.crop_scale_min"]) for r in rows]
    temperatures = [float(r["method.temperature"]) for r in rows]
    assert all(0.08 <= s <= 0.5 for s in scales) and all(0.05 <= t <= 0.5 for t in temperatures)
    assert len(set(scales)) == 2  # TPE's start-up trials are distinct random draws
    assert all(r["stop_reason"] == "completed" and float(r["knn_top1_best"]) > 0 for r in rows)
    # The searcher that proposed them is Optuna's: Tune saved its state (the Optuna study) with the sweep.
    assert list((sweep_dir / "tune").glob("searcher-state-*.pkl"))
    best = load_config(report["best_config"])
    assert best.method.temperature == pytest.approx(report["best_overrides"]["method.temperature"])

"""Population Based Training: which keys may be swept, how values are perturbed, and a real 2-trial PBT sweep
in which the weaker trial is restored from the stronger one's checkpoint and continues its step counter."""

import json
import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from distributed_ssl.config import ConfigError, load_config
from distributed_ssl.config.search_space import parse_expression
from distributed_ssl.launch.pbt_space import clip_to_space, hyperparam_mutations
from distributed_ssl.launch.pbt_trial import next_train_run_name
from distributed_ssl.launch.sweep import _scheduler, build_param_space, run_sweep
from tests.conftest import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]


def _pbt(space, **extra):
    return load_config(None, {"tune.scheduler": "pbt", "tune.space": space, **extra})


@pytest.mark.parametrize("key", ["model.patch_size", "train.batch_size", "method.proj_dim", "optim.min_lr"])
def test_pbt_rejects_keys_that_cannot_change_mid_run(key):
    with pytest.raises(ConfigError, match=rf"tune.space\['{key}'\][\s\S]*cannot change mid-run"):
        build_param_space(_pbt({key: "choice([1, 2])"}))


def test_pbt_rejects_optuna_and_accepts_mutable_keys():
    with pytest.raises(ConfigError, match="tune.search=random or grid"):
        build_param_space(_pbt({"optim.lr": "loguniform(1e-4, 1e-2)"}, **{"tune.search": "optuna"}))
    space = {"augment.jitter_strength": "uniform(0.2, 1.0)", "augment.flip_prob": "choice([0.0, 0.5])",
             "method.temperature": "loguniform(0.05, 0.5)", "optim.lr": "grid([1e-3, 1e-4])",
             "optim.weight_decay": "quniform(0.0, 0.1, 0.01)"}
    assert set(build_param_space(_pbt(space))) == set(space)
    mutations = hyperparam_mutations(space)
    assert mutations["augment.flip_prob"] == [0.0, 0.5] and mutations["optim.lr"] == [1e-3, 1e-4]
    mae_space = {"mask.ratio": "choice([0.6, 0.75])"}  # mask keys belong to the masking method
    assert set(build_param_space(_pbt(mae_space, **{"method.name": "mae"}))) == set(mae_space)
    assert 0.2 <= mutations["augment.jitter_strength"].sample() <= 1.0
    with pytest.raises(ConfigError, match=r"tune.quantile_fraction"):
        load_config(None, {"tune.quantile_fraction": 0.8})


def test_pbt_scheduler_uses_the_config():
    cfg = _pbt({"augment.crop_scale_min": "uniform(0.1, 0.5)"},
               **{"tune.perturbation_interval": 2, "tune.quantile_fraction": 0.5, "tune.pbt_synch": True})
    scheduler = _scheduler(cfg)
    assert type(scheduler).__name__ == "PopulationBasedTraining"
    assert scheduler._perturbation_interval == 2 and scheduler._quantile_fraction == 0.5 and scheduler._synch
    # The explore step keeps a perturbed value inside its bounds: 0.5 × 1.2 would leave the space.
    assert scheduler._custom_explore_fn({"augment.crop_scale_min": 0.6, "other": 7}) == {
        "augment.crop_scale_min": 0.5, "other": 7}


@pytest.mark.parametrize("expr, value, expected", [
    ("uniform(0.1, 0.5)", 0.6, 0.5), ("uniform(0.1, 0.5)", 0.05, 0.1), ("uniform(0.1, 0.5)", 0.3, 0.3),
    ("loguniform(1e-4, 1e-2)", 0.012, 1e-2), ("randint(2, 8)", 9.6, 7), ("randint(2, 8)", 3.6, 4),
    ("quniform(0.0, 0.1, 0.02)", 0.047, 0.04), ("quniform(0.05, 0.3, 0.1)", 0.04, 0.1),
    ("choice([0.6, 0.75])", 0.75, 0.75),
])
def test_perturbed_values_are_clipped_to_their_space(expr, value, expected):
    assert clip_to_space(value, parse_expression(expr)) == pytest.approx(expected)


def test_each_restart_gets_a_fresh_train_run_name(tmp_path):
    assert next_train_run_name(tmp_path) == "train_1"
    (tmp_path / "train").mkdir()
    (tmp_path / "train_1").mkdir()
    assert next_train_run_name(tmp_path) == "train_2"


@pytest.mark.slow
def test_pbt_sweep_restores_weaker_trial_from_donor_checkpoint(ray_cluster, digits, tmp_path):
    sweep_dir = tmp_path / "sweep"
    over = tiny_overrides(digits, sweep_dir, **{
        "train.epochs": 2, "train.checkpoint_every": 1000, "scaling.num_workers": 1, "train.max_steps": "null",
        "tune.num_samples": 1, "tune.perturbation_interval": 1, "tune.quantile_fraction": 0.5,
        "tune.resample_probability": 0.0, "tune.pbt_synch": "true", "tune.max_concurrent_trials": 2})
    space = {"optim.lr": "grid([3e-3, 1e-6])", "augment.crop_scale_min": "uniform(0.2, 0.6)"}
    cfg = load_config(ROOT / "jobs" / "configs" / "sweep_image_simclr_pbt.yaml", over + [f"tune.space={space}"])
    report = run_sweep(cfg)
    assert report["trials"] == 2 and report["errors"] == 0, report["table"]

    # Ray's PBT policy log: the weaker trial took the stronger one's config, with the crop scale × 0.8 or 1.2.
    policies = [json.loads(line) for line in (sweep_dir / "tune" / "pbt_global.txt").read_text().splitlines()]
    assert len(policies) == 1, policies
    donor_cfg, new_cfg = policies[0][4], policies[0][5]
    assert new_cfg["optim.lr"] in (3e-3, 1e-6)
    ratio = new_cfg["augment.crop_scale_min"] / donor_cfg["augment.crop_scale_min"]
    clipped = new_cfg["augment.crop_scale_min"] in (0.2, 0.6)
    assert clipped or math.isclose(ratio, 0.8) or math.isclose(ratio, 1.2), (donor_cfg, new_cfg)

    client = MlflowClient(cfg.tracking.uri)
    children = client.search_runs([client.get_run(report["mlflow_run_id"]).info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{report['mlflow_run_id']}'")
    assert len(children) == 2
    exploited = [c for c in children if c.data.tags.get("pbt_exploits") == "1"]
    assert len(exploited) == 1, [c.data.tags for c in children]
    run, donor = exploited[0], next(c for c in children if c is not exploited[0])
    step = int(run.data.tags["pbt_last_exploit_step"])
    assert donor.data.tags["trial_id"] in run.data.tags["pbt_last_donor"]
    assert step > 0 and run.data.tags["resumed_from_step"] == str(step)  # the donor's epoch-1 step, not 0
    history = client.get_metric_history(run.info.run_id, "pbt.augment.crop_scale_min")
    assert [(m.step, m.value) for m in history] == [(step, pytest.approx(new_cfg["augment.crop_scale_min"]))]
    # The restored trial continued from the donor's counter: its last step is two epochs of steps.
    trial_dir = sweep_dir / "trials" / run.data.tags["trial_name"]
    assert (trial_dir / "train_1").is_dir()
    summary = json.loads((trial_dir / "summary.json").read_text())
    assert summary["steps"] == 2 * step and summary["epochs"] == 2
    assert json.loads((Path(summary["checkpoint"]) / "meta.json").read_text())["global_step"] == 2 * step
    assert str(trial_dir / "train_1") in summary["checkpoint"]

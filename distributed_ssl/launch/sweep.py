"""`dssl tune`: a Ray Tune sweep over dotted config keys, each trial a distributed TorchTrainer.

MLflow gets one parent run for the sweep and a nested child run per trial; the sweep dir gets
best_config.yaml, trials.csv and plots.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from pathlib import Path
from typing import Any

from ray import tune

from distributed_ssl.config.flatten import flat_params
from distributed_ssl.config.loader import ConfigError, save_config
from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.config.search_space import check_space_fits, parse_expression, to_tune_domain
from distributed_ssl.data.manifest import DatasetError
from distributed_ssl.launch.cluster_checks import check_writable
from distributed_ssl.launch.console import is_verbose
from distributed_ssl.launch.pbt_space import build_pbt_scheduler, check_mutable_keys
from distributed_ssl.launch.ray_runtime import ensure_ray
from distributed_ssl.launch.run_dir_guard import check_run_dir, locked, prepare_run_dir
from distributed_ssl.launch.run_state import RUN_STATE, RunState
from distributed_ssl.launch.sweep_console import SweepConsoleCallback
from distributed_ssl.launch.sweep_report import write_sweep_report
from distributed_ssl.launch.sweep_seal import SweepSealCallback, seal_tuner_file, verify_sweep_state
from distributed_ssl.launch.sweep_trial import run_trial
from distributed_ssl.launch.trainer import absolute_paths, check_cluster, protected_paths, validate_inputs
from distributed_ssl.tracking.mlflow_tracking import RunLogger, create_run, tracking_uri_for
from distributed_ssl.util import storage
from distributed_ssl.util.machine import machine_cores
from distributed_ssl.util.run_dir import RunDir

log = logging.getLogger("distributed_ssl.tune")
TUNE_NAME = "tune"
SWEEP_CONFIG = "sweep_config.yaml"
TRIAL_DRIVER_CPUS = 0.1  # the trial function only waits on its TorchTrainer


def build_param_space(cfg: SSLConfig) -> dict[str, Any]:
    """Tune samplers keyed by dotted config key; every key and candidate value is checked against the config."""
    if not cfg.tune.space:
        raise ConfigError("tune.space is empty: name at least one dotted key to search, "
                          "e.g. tune.space={augment.crop_scale_min: 'uniform(0.08, 0.5)'}")
    if cfg.tune.scheduler == "pbt":
        if cfg.tune.search == "optuna":
            raise ConfigError("tune.scheduler=pbt chooses new values itself: use tune.search=random or grid, "
                              "not optuna")
        check_mutable_keys(cfg.tune.space)
    check_space_fits(cfg)
    space = {}
    for key, expr in cfg.tune.space.items():
        dist = parse_expression(expr)
        try:
            space[key] = to_tune_domain(dist, cfg.tune.search == "grid")
        except ValueError as exc:
            raise ConfigError(f"tune.space[{key!r}]: {exc}") from None
    return space


def _per_trial_cpus(cfg: SSLConfig) -> float:
    return cfg.scaling.num_workers * cfg.scaling.cpus_per_worker + cfg.data.preprocess_cpus + TRIAL_DRIVER_CPUS


def _concurrency(cfg: SSLConfig) -> int | None:
    """Trials at once: as set; all of them on a remote (autoscaling) cluster, which grows to fit pending trials;
    locally, as many as the machine's cores hold training workers."""
    if cfg.tune.max_concurrent_trials:
        return cfg.tune.max_concurrent_trials
    if cfg.run.ray_address or os.environ.get("RAY_ADDRESS"):
        return None
    workers = cfg.scaling.num_workers * cfg.scaling.cpus_per_worker
    return max(1, math.floor(machine_cores() / workers))


def _search_alg(cfg: SSLConfig):
    if cfg.tune.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(metric=cfg.tune.metric, mode=cfg.tune.mode, seed=cfg.tune.seed)
    return None


def _scheduler(cfg: SSLConfig):
    if cfg.tune.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(time_attr="epoch", max_t=cfg.train.epochs,
                             grace_period=min(cfg.tune.grace_period, cfg.train.epochs),
                             reduction_factor=cfg.tune.reduction_factor)
    if cfg.tune.scheduler == "pbt":
        return build_pbt_scheduler(cfg)
    return None


def run_sweep(cfg: SSLConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run (or resume) a sweep; returns the report with the best trial and every trial's outcome."""
    cfg = absolute_paths(cfg)
    param_space = build_param_space(cfg)
    if cfg.tune.metric.startswith("knn") and not cfg.data.eval:
        raise DatasetError(f"tune.metric={cfg.tune.metric} needs a labeled data.eval set")
    validate_inputs(cfg)
    sweep_dir = RunDir(cfg.run.dir)
    if cfg.tune.scheduler == "pbt" and not sweep_dir.is_local:
        raise ConfigError(f"tune.scheduler=pbt keeps its trials' restore points on a local path: run.dir="
                          f"{sweep_dir.uri} must be a local or shared-disk folder for PBT (asha and fifo sweeps "
                          "take any URI)")
    contents = (TUNE_NAME, RUN_STATE)
    check_run_dir(sweep_dir, resume, overwrite, protected_paths(cfg), kind="sweep", contents=contents)
    tracking_uri = tracking_uri_for(cfg.tracking.uri, sweep_dir.uri)
    if not sweep_dir.is_local:
        check_writable(sweep_dir.uri)
    if resume:  # before Tune unpickles anything in it
        if not sweep_dir.is_local:
            raise ConfigError(f"--resume of a sweep on object storage ({sweep_dir.uri}) is not supported yet: its "
                              "Tune state cannot be verified before it is unpickled. Start the sweep again, or "
                              "keep sweeps to resume on a local or shared-disk run.dir")
        verify_sweep_state(Path(sweep_dir.path), Path(sweep_dir.path) / TUNE_NAME)
    concurrency = _concurrency(cfg)
    # Logical CPUs for a local Ray: every concurrent trial's workers, data tasks and driver, plus slack.
    with locked(sweep_dir):
        ensure_ray(cfg, min_cpus=(concurrency or 1) * _per_trial_cpus(cfg) + 2)
        check_cluster(cfg, sweep_dir, tracking_uri)
        prepare_run_dir(sweep_dir, resume, overwrite, protected_paths(cfg), kind="sweep", contents=contents)
        return _sweep(cfg, sweep_dir, tracking_uri, param_space, concurrency, resume)


def _callbacks(cfg: SSLConfig, sweep_dir: RunDir) -> list[tune.Callback]:
    """The console's lines for each trial, and on a local sweep dir the seal over Tune's state."""
    console = SweepConsoleCallback(cfg.tune.metric, cfg.tune.mode, list(cfg.tune.space))
    return [console, SweepSealCallback(Path(sweep_dir.path))] if sweep_dir.is_local else [console]


def _sweep(cfg: SSLConfig, sweep_dir: RunDir, tracking_uri: str, param_space: dict[str, Any],
           concurrency: int | None, resume: bool) -> dict[str, Any]:
    save_config(cfg, sweep_dir.child_uri(SWEEP_CONFIG))
    state = RunState.load(sweep_dir) if resume else None
    if state is None:
        params = {k: v for k, v in flat_params(cfg).items() if not k.startswith("tune.space")}
        params.update({f"search.{k}": v for k, v in cfg.tune.space.items()})
        name = cfg.run.name or sweep_dir.uri.rstrip("/").rsplit("/", 1)[-1]
        state = RunState(create_run(tracking_uri, cfg.tracking.experiment, sweep_dir.uri, name, params,
                                    {"kind": "sweep"}), tracking_uri, cfg.tracking.experiment)
        state.save(sweep_dir)
    parent = RunLogger(state.tracking_uri, state.mlflow_run_id)
    with sweep_dir.local_file(SWEEP_CONFIG) as path:
        parent.artifact(path)

    trainable = tune.with_resources(
        functools.partial(run_trial, base=cfg.model_dump(mode="json"), sweep_dir=sweep_dir.uri,
                          parent_run_id=state.mlflow_run_id, tracking_uri=state.tracking_uri),
        {"cpu": TRIAL_DRIVER_CPUS})
    if resume:
        tuner = tune.Tuner.restore(storage.join(sweep_dir.path, TUNE_NAME), trainable=trainable,
                                   resume_unfinished=True, resume_errored=True,
                                   storage_filesystem=sweep_dir.ray_storage().get("storage_filesystem"))
    else:
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(metric=cfg.tune.metric, mode=cfg.tune.mode, num_samples=cfg.tune.num_samples,
                                        search_alg=_search_alg(cfg), scheduler=_scheduler(cfg),
                                        max_concurrent_trials=concurrency),
            run_config=tune.RunConfig(name=TUNE_NAME, **sweep_dir.ray_storage(),
                                      failure_config=tune.FailureConfig(max_failures=cfg.tune.trial_max_failures),
                                      callbacks=_callbacks(cfg, sweep_dir), verbose=None if is_verbose() else 0))
    if sweep_dir.is_local:
        seal_tuner_file(Path(sweep_dir.path), Path(sweep_dir.path) / TUNE_NAME, resume)
    try:
        results = tuner.fit()
    except BaseException:
        parent.finish("FAILED")
        raise
    report = write_sweep_report(cfg, results, sweep_dir, parent)
    parent.finish("FINISHED")
    return report

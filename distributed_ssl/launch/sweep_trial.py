"""One Tune trial: a full distributed `run_training` with the trial's sampled overrides.

The trial function is the Tune "driver": it holds almost no resources itself and starts its own TorchTrainer,
whose per-epoch reports reach Tune's scheduler through `EpochReportCallback` (metrics only), or, under PBT,
through `launch.pbt_trial` together with their checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from distributed_ssl.config.loader import resolve_config
from distributed_ssl.launch.pbt_trial import is_objective_report, run_pbt_trial
from distributed_ssl.launch.run_state import RunState
from distributed_ssl.launch.trainer import run_training
from distributed_ssl.util import storage
from distributed_ssl.util.run_dir import RunDir


class EpochReportCallback(TuneReportCallback):
    """Forward only epoch-end reports that carry the objective (see `is_objective_report`)."""

    def __init__(self, metric: str):
        super().__init__()
        self.metric = metric

    def after_report(self, run_context, metrics, checkpoint) -> None:
        if is_objective_report(metrics, self.metric):
            super().after_report(run_context, metrics, checkpoint)


def run_trial(config: dict[str, Any], base: dict[str, Any], sweep_dir: str, parent_run_id: str,
              tracking_uri: str) -> None:
    """Train one trial in `SWEEP_DIR/trials/TRIAL_NAME`; a retried or resumed trial continues its checkpoint."""
    ctx = tune.get_context()
    trial_dir = storage.join(sweep_dir, "trials", ctx.get_trial_name())
    cfg = resolve_config(base, {**config, "run.dir": trial_dir, "run.name": ctx.get_trial_name(),
                                "tracking.uri": tracking_uri}, source=f"trial {ctx.get_trial_name()}")
    tags = {"mlflow.parentRunId": parent_run_id, "trial_id": ctx.get_trial_id(), "trial_name": ctx.get_trial_name()}
    if cfg.tune.scheduler == "pbt":  # Tune must hold checkpoints to restart trials from them
        run_pbt_trial(cfg, Path(trial_dir), swept=config, tags=tags)
        return
    resume = RunState.load(RunDir(trial_dir)) is not None
    run_training(cfg, resume=resume, callbacks=[EpochReportCallback(cfg.tune.metric)], extra_tags=tags,
                 cluster_checks=False, progress=False)

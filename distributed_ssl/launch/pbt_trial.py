"""One Population Based Training trial: Ray Train's epoch-end checkpoints handed to Tune, restores from a donor.

Ray's `TuneReportCallback` forwards metrics only, so PBT would have nothing to exploit. Here the TorchTrainer
runs in a background thread; `CheckpointQueueCallback` (inside the Train controller) puts every epoch-end
report with its checkpoint path on a queue, and the trial function reports both to Tune. When PBT restarts a
trial, `tune.get_checkpoint()` is the donor's (or its own) epoch-end checkpoint: a new Ray Train run in the
same trial dir starts from it, so steps and epochs continue and the new augmentation/mask/optimizer values
take effect, and the trial's MLflow run records the exploit.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from ray import tune
from ray.train.v2.api.callback import UserCallback
from ray.util.queue import Empty, Queue

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.engine.checkpointing import META_FILE
from distributed_ssl.engine.reports import is_epoch_end, is_final
from distributed_ssl.launch.pbt_space import PBT_TIME_ATTR
from distributed_ssl.launch.run_state import RAY_RUN_NAME, RunState
from distributed_ssl.launch.trainer import run_training
from distributed_ssl.tracking.mlflow_tracking import RunLogger
from distributed_ssl.util.run_dir import RunDir

log = logging.getLogger("distributed_ssl.tune")
POLL_S = 1.0


def is_objective_report(metrics: list[dict[str, Any]], metric: str) -> bool:
    """An epoch-end report that carries the objective: the only kind Tune's schedulers may compare, since
    mid-epoch checkpoint reports come at other points and the objective is measured once per epoch."""
    return bool(metrics) and is_epoch_end(metrics[0]) and metrics[0].get(metric) is not None


class CheckpointQueueCallback(UserCallback):
    """Runs in the Train controller: hands epoch-end reports that carry the objective, with their checkpoint
    path, to the trial function. `put` blocks while the previous report is unread, so Train waits for Tune."""

    def __init__(self, queue: Queue, metric: str):
        self.queue = queue
        self.metric = metric

    def after_report(self, run_context, metrics, checkpoint) -> None:
        if is_objective_report(metrics, self.metric):
            self.queue.put({"metrics": dict(metrics[0]), "checkpoint": checkpoint.path if checkpoint else None})


def next_train_run_name(trial_dir: Path) -> str:
    """A Ray Train run name not used in this trial dir, so Train does not resume its own older run."""
    used = {p.name for p in trial_dir.glob(f"{RAY_RUN_NAME}*") if p.is_dir()}
    index = 1
    while f"{RAY_RUN_NAME}_{index}" in used:
        index += 1
    return f"{RAY_RUN_NAME}_{index}"


def record_restore(trial_dir: Path, checkpoint_dir: str, own_tune_dir: str, swept: dict[str, Any]) -> dict[str, Any]:
    """Tag the trial's MLflow run with where it was restored from; an exploit is a restore from another trial.

    Returns what was recorded: donor (Tune trial dir name), step, exploit (bool), exploits (count)."""
    meta_file = Path(checkpoint_dir) / META_FILE
    step = int(json.loads(meta_file.read_text())["global_step"]) if meta_file.exists() else 0
    donor = Path(checkpoint_dir).parent.name
    exploit = donor != Path(own_tune_dir).name
    state = RunState.load(RunDir(trial_dir))
    record = {"donor": donor, "step": step, "exploit": exploit, "exploits": 0}
    if state is None:
        return record
    logger = RunLogger(state.tracking_uri, state.mlflow_run_id)
    tags = logger.client.get_run(state.mlflow_run_id).data.tags
    record["exploits"] = int(tags.get("pbt_exploits", 0)) + int(exploit)
    if exploit:
        logger.tags({"pbt_exploits": str(record["exploits"]), "pbt_last_donor": donor,
                     "pbt_last_exploit_step": str(step)})
        log.info("PBT: %s restored from %s at step %d with %s", trial_dir.name, donor, step, swept)
    numeric = {f"pbt.{k}": float(v) for k, v in swept.items() if isinstance(v, (int, float))}
    if numeric:  # the swept values' history over steps, one point per restart
        logger.metrics(numeric, step)
    return record


def run_pbt_trial(cfg: SSLConfig, trial_dir: Path, swept: dict[str, Any], tags: dict[str, str]) -> None:
    """Train one PBT trial, reporting each epoch end with its checkpoint to Tune; errors fail the trial."""
    ctx = tune.get_context()
    start = tune.get_checkpoint()
    init_checkpoint, run_name = None, RAY_RUN_NAME
    if start is not None:
        init_checkpoint, run_name = start.path, next_train_run_name(trial_dir)
        record_restore(trial_dir, start.path, ctx.get_trial_dir(), swept)
    queue = Queue(maxsize=1, actor_options={"num_cpus": 0})
    failure: list[BaseException] = []

    def train() -> None:
        try:
            run_training(cfg, resume=RunState.load(RunDir(trial_dir)) is not None, extra_tags=tags,
                         callbacks=[CheckpointQueueCallback(queue, cfg.tune.metric)],
                         init_checkpoint=init_checkpoint, ray_run_name=run_name, checkpoint_every_epoch=True,
                         cluster_checks=False, progress=False)
        except BaseException as exc:  # re-raised in the trial function, so Tune sees the trial fail
            failure.append(exc)

    thread = threading.Thread(target=train, name=f"train-{ctx.get_trial_name()}", daemon=True)
    thread.start()
    while True:
        try:
            item = queue.get(timeout=POLL_S)
        except Empty:
            if thread.is_alive():
                continue
            try:  # a report put just before the thread ended
                item = queue.get(block=False)
            except Empty:
                break
        metrics = item["metrics"]
        if not is_final(metrics):  # PBT decides only between epochs, never on a trial's last report
            metrics[PBT_TIME_ATTR] = metrics["epoch"]
        path = item["checkpoint"]
        tune.report(metrics, checkpoint=tune.Checkpoint(path) if path else None)
    thread.join()
    if failure:
        raise failure[0]

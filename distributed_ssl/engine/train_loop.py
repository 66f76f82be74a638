"""The Ray Train worker function: a `Trainer` (engine/trainer.py) on Ray Train's context, data shard and reports.

A deterministic data error (see engine/data_errors.py) is recorded in the run dir before it is raised, and a
worker group restarted after one ends at once instead of training into the same error again.
"""

from __future__ import annotations

import logging
from typing import Any

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.engine.data_errors import deterministic_cause, record_fatal
from distributed_ssl.engine.progress import ProgressSender
from distributed_ssl.engine.reporter import RayTrainReporter
from distributed_ssl.engine.trainer import Trainer
from distributed_ssl.util.log_file import LogFile
from distributed_ssl.util.run_dir import RunDir


def train_worker(config: dict[str, Any]) -> None:
    """Entry point of every Ray Train worker; `config` is built by `launch.trainer`."""
    import ray

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = RunDir(config["run_dir"])
    reporter = RayTrainReporter(init_checkpoint=config.get("init_checkpoint"), dataset=config.get("own_dataset"))
    # decoded once by the driver (bad records counted there, before any worker started), shared via the object store
    eval_splits = ray.get(config["eval_splits"]) if config.get("eval_splits") is not None else None
    trainer = Trainer(SSLConfig.model_validate(config["cfg"]), reporter, steps_per_epoch=config["steps_per_epoch"],
                      total_steps=config["total_steps"], eval_splits=eval_splits, run_dir=config["run_dir"],
                      tracking_uri=config["tracking_uri"], mlflow_run_id=config["mlflow_run_id"],
                      checkpoint_every_epoch=bool(config.get("checkpoint_every_epoch")),
                      epochs_per_pass=int(config.get("epochs_per_pass") or 1),
                      progress=ProgressSender(config.get("progress_board") if reporter.rank == 0 else None))
    worker_log = LogFile(f"rank{reporter.rank}.log")  # RUN_DIR/logs/rankR.log: this process's records
    try:
        trainer.fit()
    except Exception as exc:
        cause = deterministic_cause(exc)
        if cause is not None:
            record_fatal(run_dir, cause)
        raise
    finally:
        worker_log.save_to(run_dir)
        worker_log.discard()

"""Build and run a TorchTrainer from a config: the one function `dssl train`, jobs and sweeps call."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import ray.train

from distributed_ssl.config.flatten import flat_params
from distributed_ssl.config.loader import ConfigError, save_config
from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.data.bad_records import collect_bad_records, ledger_for_run
from distributed_ssl.data.manifest import DatasetError, Manifest
from distributed_ssl.data.splits import split_dirs
from distributed_ssl.data.train_records import (
    fits_in_object_store_cache,
    open_train_manifest,
    train_record_count,
)
from distributed_ssl.engine.checkpointing import remove_torn_checkpoints
from distributed_ssl.engine.data_errors import FATAL_FILE, deterministic_cause, read_fatal
from distributed_ssl.engine.reports import FinalReport
from distributed_ssl.engine.train_loop import train_worker
from distributed_ssl.evaluation.labeled_set import load_labeled
from distributed_ssl.launch.cluster_checks import (
    check_tracking_store,
    check_writable,
    cluster_shape,
    preflight,
)
from distributed_ssl.launch.console import RunConsole, route_library_logs
from distributed_ssl.launch.data_error_trainer import DataErrorAwareTorchTrainer
from distributed_ssl.launch.ray_runtime import ensure_ray, set_train_controller_env
from distributed_ssl.launch.run_dir_guard import check_run_dir, locked, prepare_run_dir
from distributed_ssl.launch.run_state import CONFIG_FILE, RAY_RUN_NAME, SUMMARY_FILE, RunState
from distributed_ssl.launch.summary import collapse_summary, write_summary
from distributed_ssl.methods.registry import build_method, view_spec_for
from distributed_ssl.modalities.train_dataset import build_train_dataset
from distributed_ssl.tracking.mlflow_tracking import (
    RunLogger,
    create_run,
    logger_retry_kwargs,
    tracking_uri_for,
)
from distributed_ssl.util import storage
from distributed_ssl.util.log_file import LOGS_DIR, LogFile
from distributed_ssl.util.run_dir import RunDir

log = logging.getLogger("distributed_ssl")


def plan_steps(cfg: SSLConfig, manifest: Manifest) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps); every rank runs exactly these."""
    num_records = train_record_count(cfg, manifest)  # only the kept records when data.keep_ids is set
    per_worker = num_records // cfg.scaling.num_workers
    micro = per_worker // cfg.train.batch_size
    steps_per_epoch = micro // cfg.train.grad_accum
    if steps_per_epoch < 1:
        raise DatasetError(
            f"data.train={cfg.data.train} has {num_records} records: too few for "
            f"scaling.num_workers={cfg.scaling.num_workers} × train.batch_size={cfg.train.batch_size} × "
            f"train.grad_accum={cfg.train.grad_accum}")
    total = steps_per_epoch * cfg.train.epochs
    if cfg.train.max_steps:
        total = min(total, cfg.train.max_steps)
    return steps_per_epoch, total


# A pass of the data iterator should hold at least this many optimizer steps: below it, Ray Data's start-up of
# each pass (planning, the split coordinator, the first blocks) costs more than the pass computes. With a full
# shuffle a pass is one all-to-all shuffle over all its epochs' records, so it stays short; shuffled locally, the
# repeated epochs share the cached blocks and cost nothing to hold, so one pass may cover the run (up to a cap
# that keeps Ray Data's plan small).
MIN_STEPS_PER_PASS = 50
MIN_STEPS_PER_LOCAL_PASS = 1000
MAX_EPOCHS_PER_PASS = 64


def epochs_per_pass(cfg: SSLConfig, manifest: Manifest, plan: tuple[int, int]) -> int:
    """Epochs streamed through one Ray Data execution (see modalities/train_dataset.py), chosen so that the
    passes divide the run's epochs about evenly (the last pass is not mostly thrown away). Only a set cached in
    the object store is repeated: its blocks are shared, where a streamed set would pass a whole-pass shuffle
    barrier several epochs wide."""
    steps_per_epoch, total_steps = plan
    if not fits_in_object_store_cache(cfg, manifest):
        return 1
    if cfg.data.epochs_per_pass is not None:
        return cfg.data.epochs_per_pass
    epochs = -(-total_steps // steps_per_epoch)  # the epochs this run reaches (max_steps may end it early)
    min_steps = MIN_STEPS_PER_PASS if cfg.data.shuffle == "full" else MIN_STEPS_PER_LOCAL_PASS
    wanted = min(-(-min_steps // steps_per_epoch), MAX_EPOCHS_PER_PASS)
    passes = -(-epochs // wanted)
    return max(1, -(-epochs // passes))


def validate_inputs(cfg: SSLConfig) -> Manifest:
    """Fail before any worker starts: missing shards, wrong modality, unlabeled eval set, a model that cannot be
    built for this method and modality."""
    manifest = open_train_manifest(cfg)
    if cfg.data.eval:
        from distributed_ssl.data.manifest import load_manifest

        for name, path in split_dirs(cfg.data.eval).items():
            eval_manifest = load_manifest(path)
            if not eval_manifest.has_labels:
                raise DatasetError(f"data.eval={cfg.data.eval}: split {name} has no labels")
    if cfg.method.name == "simclr" and cfg.train.batch_size < 2:
        raise ConfigError("train.batch_size must be >= 2 for SimCLR negatives")
    if cfg.model.init_from:
        fs, path = storage.resolve(cfg.model.init_from)
        if not storage.exists(fs, path):
            raise ConfigError(f"model.init_from={cfg.model.init_from}: no such file (expected an encoder.pt)")
    try:  # the workers build exactly this; a misfit (e.g. a point encoder on images) fails here instead
        build_method(cfg)
    except ValueError as exc:
        raise ConfigError(f"method.name={cfg.method.name}, model.encoder={cfg.model.encoder}, "
                          f"modality.name={cfg.modality.name}: {exc}") from None
    return manifest


def absolute_paths(cfg: SSLConfig) -> SSLConfig:
    """Local paths made absolute: workers run in other directories (and on other nodes). URIs stay as given."""
    def fix(path: str | None) -> str | None:
        return path if path is None else storage.normalize(path)

    return cfg.model_copy(update={
        "data": cfg.data.model_copy(update={"train": fix(cfg.data.train), "eval": fix(cfg.data.eval),
                                            "keep_ids": fix(cfg.data.keep_ids)}),
        "run": cfg.run.model_copy(update={"dir": fix(cfg.run.dir)}),
        "model": cfg.model.model_copy(update={"init_from": fix(cfg.model.init_from)}),
    })


def data_dirs(cfg: SSLConfig) -> list[str]:
    """The shard folders a run reads: data.train and each split of data.eval."""
    return [cfg.data.train, *(split_dirs(cfg.data.eval).values() if cfg.data.eval else [])]


def check_cluster(cfg: SSLConfig, run_dir: RunDir, tracking_uri: str) -> None:
    """On the connected cluster: a tracking store and a run dir that every node reaches (see cluster_checks)."""
    shape = cluster_shape()
    check_tracking_store(tracking_uri, shape)
    if shape.is_multi_node:
        preflight(run_dir.uri, data_dirs(cfg))


def protected_paths(cfg: SSLConfig) -> list[str | None]:
    """What `--overwrite` must never delete: the run's own data."""
    return [cfg.data.train, cfg.data.eval, cfg.data.keep_ids, cfg.model.init_from]


def run_training(cfg: SSLConfig, resume: bool = False, overwrite: bool = False,
                 extra_tags: dict[str, str] | None = None, callbacks: list | None = None,
                 init_checkpoint: str | None = None, ray_run_name: str = RAY_RUN_NAME,
                 checkpoint_every_epoch: bool = False, cluster_checks: bool = True,
                 progress: bool = True) -> dict[str, Any]:
    """Train, evaluate and summarise one run; returns the summary written to RUN_DIR/summary.json.

    Everything that can fail without training fails first, before a worker starts: the config and data
    (`validate_inputs`), the run dir (exists, may be overwritten, can be written), the tracking store, and on a
    cluster the preflight of every node (`cluster_checks=False` inside a sweep, whose driver checked once).
    `init_checkpoint` (a checkpoint directory, e.g. a PBT donor's) starts a fresh Ray Train run named
    `ray_run_name` from that state; the run's own checkpoints take precedence on a worker-group restart.
    `checkpoint_every_epoch` puts a checkpoint on every epoch-end report, so a PBT trial can be restored there.
    `progress` shows the run on this process's console (launch/console.py); a sweep's trials show none.
    """
    route_library_logs()  # Ray and MLflow are imported by now
    options = RunOptions(resume, overwrite, extra_tags or {}, callbacks or [], init_checkpoint, ray_run_name,
                         checkpoint_every_epoch, cluster_checks, progress, LogFile("driver.log"))
    try:
        return _checked_run(cfg, options)
    finally:
        options.driver_log.discard()


@dataclass(frozen=True)
class RunOptions:
    """How `run_training` runs (see its docstring); `driver_log` holds every library's records of this run."""

    resume: bool
    overwrite: bool
    extra_tags: dict[str, str]
    callbacks: list
    init_checkpoint: str | None
    ray_run_name: str
    checkpoint_every_epoch: bool
    cluster_checks: bool
    progress: bool
    driver_log: LogFile


def _checked_run(cfg: SSLConfig, opt: RunOptions) -> dict[str, Any]:
    cfg = absolute_paths(cfg)
    manifest = validate_inputs(cfg)
    plan = plan_steps(cfg, manifest)
    eval_splits = load_labeled(cfg.data.eval, cfg) if cfg.data.eval else None  # bad records fail or skip here
    run_dir = RunDir(cfg.run.dir)
    check_run_dir(run_dir, opt.resume, opt.overwrite, protected_paths(cfg))
    tracking_uri = tracking_uri_for(cfg.tracking.uri, run_dir.uri)
    if not run_dir.is_local:
        check_writable(run_dir.uri)
    with locked(run_dir):  # before Ray starts: a second run into a live run dir is turned away at once
        ensure_ray(cfg)
        if opt.cluster_checks:
            check_cluster(cfg, run_dir, tracking_uri)
        prepare_run_dir(run_dir, opt.resume, opt.overwrite, protected_paths(cfg))
        if opt.resume and run_dir.is_local:  # on object storage a torn copy is never registered, and stays unused
            for torn in remove_torn_checkpoints(run_dir.child_uri(opt.ray_run_name)):
                log.warning("removed %s: a checkpoint copy cut off by a crash (never registered)", torn)
        try:
            return _train(cfg, run_dir, manifest, plan, tracking_uri, eval_splits, opt)
        finally:
            opt.driver_log.save_to(run_dir)


def iterates_its_own_dataset(cfg: SSLConfig) -> bool:
    """A single worker runs the dataset's iterator in its own process, as a DataLoader would: through Ray Train's
    `datasets` it would also start a split coordinator, one more process importing Ray Data that only divides
    the stream between workers."""
    return cfg.scaling.num_workers == 1


def _open_tracking(cfg: SSLConfig, run_dir: RunDir, tracking_uri: str, resume: bool,
                   extra_tags: dict[str, str] | None) -> RunState:
    """The run's MLflow run: the saved one on resume, else a new one with the config as params."""
    state = RunState.load(run_dir) if resume else None
    if state is None:
        tags = {"method": cfg.method.name, "modality": cfg.modality.name, **(extra_tags or {})}
        name = cfg.run.name or run_dir.uri.rstrip("/").rsplit("/", 1)[-1]
        run_id = create_run(tracking_uri, cfg.tracking.experiment, run_dir.uri, name, flat_params(cfg), tags)
        state = RunState(run_id, tracking_uri, cfg.tracking.experiment)
        state.save(run_dir)
    return state


def _train(cfg: SSLConfig, run_dir: RunDir, manifest: Manifest, plan: tuple[int, int], tracking_uri: str,
           eval_splits: Any, opt: RunOptions) -> dict[str, Any]:
    steps_per_epoch, total_steps = plan
    save_config(cfg, run_dir.child_uri(CONFIG_FILE))
    state = _open_tracking(cfg, run_dir, tracking_uri, opt.resume, opt.extra_tags)
    logger = RunLogger(state.tracking_uri, state.mlflow_run_id, buffer_dir=run_dir, **logger_retry_kwargs(cfg))
    with run_dir.local_file(CONFIG_FILE) as config_file:
        logger.artifact(config_file)

    ledger = ledger_for_run(state.mlflow_run_id, manifest.num_records, cfg.data.max_bad_fraction)
    per_pass = epochs_per_pass(cfg, manifest, plan)
    dataset = build_train_dataset(cfg, view_spec_for(cfg), manifest, ledger=ledger,
                                  epochs_per_pass=per_pass)
    show = RunConsole(label=cfg.run.name or "train") if opt.progress else contextlib.nullcontext()
    set_train_controller_env(cfg)
    with show as console:
        trainer = DataErrorAwareTorchTrainer(
            train_worker,
            train_loop_config={"cfg": cfg.model_dump(mode="json"), "steps_per_epoch": steps_per_epoch,
                               "total_steps": total_steps, "tracking_uri": state.tracking_uri,
                               "mlflow_run_id": state.mlflow_run_id, "run_dir": run_dir.uri,
                               "init_checkpoint": opt.init_checkpoint,
                               "checkpoint_every_epoch": opt.checkpoint_every_epoch,
                               "eval_splits": ray.put(eval_splits) if eval_splits is not None else None,
                               "progress_board": console.board if console else None,
                               "epochs_per_pass": per_pass,
                               "own_dataset": dataset if iterates_its_own_dataset(cfg) else None},
            scaling_config=ray.train.ScalingConfig(num_workers=cfg.scaling.num_workers, use_gpu=cfg.scaling.use_gpu,
                                                   resources_per_worker={"CPU": cfg.scaling.cpus_per_worker}),
            run_config=ray.train.RunConfig(
                name=opt.ray_run_name, **run_dir.ray_storage(),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.run.keep_checkpoints),
                failure_config=ray.train.FailureConfig(max_failures=cfg.run.max_failures),
                callbacks=opt.callbacks),
            datasets={} if iterates_its_own_dataset(cfg) else {"train": dataset},
            run_dir_uri=run_dir.uri,
        )
        run_dir.delete(FATAL_FILE)  # one left by an earlier attempt, whose data may have been fixed since
        started = time.time()
        try:
            result = trainer.fit()
        except BaseException as exc:
            logger.finish("FAILED")
            with contextlib.suppress(Exception):  # a detached actor: it would outlive the failed run
                collect_bad_records(ledger)
            fatal, cause = read_fatal(run_dir), deterministic_cause(exc)
            if fatal is not None or cause is not None:
                raise DatasetError(fatal or str(cause)) from None
            raise
    bad = collect_bad_records(ledger)
    if bad:
        run_dir.write_text("bad_records.jsonl", "".join(json.dumps(item) + "\n" for item in bad))
        with run_dir.local_file("bad_records.jsonl") as path:
            logger.artifact(path)
        log.warning("%d undecodable records were skipped; see %s", len(bad), run_dir.child_uri("bad_records.jsonl"))
    logger.metrics({"bad_records": float(len(bad))}, step=0)
    summary = {**_summary(cfg, result, manifest, state, run_dir, time.time() - started), "bad_records": len(bad)}
    write_summary(summary, run_dir.child_uri(SUMMARY_FILE))
    with run_dir.local_file(SUMMARY_FILE) as path:
        logger.artifact(path)
    _log_run_logs(run_dir, logger, opt.driver_log)
    logger.finish("FINISHED")
    return summary


def _log_run_logs(run_dir: RunDir, logger: RunLogger, driver_log: LogFile) -> None:
    """RUN_DIR/logs/ (the driver's log so far, each worker's) as MLflow artifacts under logs/."""
    driver_log.save_to(run_dir)
    for name in run_dir.list(LOGS_DIR):
        with run_dir.local_file(f"{LOGS_DIR}/{name}") as path:
            logger.artifact(path, subdir=LOGS_DIR)


def _summary(cfg: SSLConfig, result: Any, manifest: Manifest, state: RunState, run_dir: RunDir,
             wall_time_s: float) -> dict[str, Any]:
    """summary.json's fields from the final report (engine/reports.py's `FinalReport`)."""
    final = FinalReport.from_metrics(result.metrics or {})  # the last report; fields it lacks are None
    checkpoint = result.checkpoint
    return {
        "method": cfg.method.name, "modality": cfg.modality.name, "encoder": cfg.model.encoder,
        "steps": final.global_step, "epochs": final.epoch,
        "knn_top1": final.knn_top1, "knn_top1_random_init": final.knn_top1_random_init,
        "knn_top1_raw_features": final.knn_top1_raw_features,
        "linear_top1": final.probe.get("linear_top1"), "linear_top1_random_init": final.linear_top1_random_init,
        **collapse_summary(final.probe),
        "samples_per_s": final.samples_per_s, "final_loss": final.loss,
        "input_wait_fraction": final.input_wait_fraction, "eval_seconds": final.eval_seconds,
        "epoch_gap_seconds": final.epoch_gap_seconds,
        "wall_time_s": round(wall_time_s, 1), "num_workers": cfg.scaling.num_workers,
        "zero_stage": cfg.deepspeed.zero_stage, "precision": cfg.deepspeed.precision,
        "train_records": train_record_count(cfg, manifest),
        "mlflow_run_id": state.mlflow_run_id,
        "tracking_uri": state.tracking_uri, "run_dir": run_dir.uri,
        "checkpoint": storage.uri_of(checkpoint.filesystem, checkpoint.path) if checkpoint else None,
    }

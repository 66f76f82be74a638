"""The Ray Train worker function: DeepSpeed engine, data shard, schedules, checkpoints, probes, logging.

It knows no modality: batches arrive as `view_i` / `mask` tensors from the data pipeline, and the method
turns them into a loss.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np
import ray.train
import torch

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.engine.checkpointing import load_checkpoint, save_checkpoint
from distributed_ssl.engine.data_errors import deterministic_cause, read_fatal, record_fatal
from distributed_ssl.engine.deepspeed_config import build_deepspeed_config
from distributed_ssl.engine.deepspeed_ops import skip_inference_only_ops
from distributed_ssl.engine.input_wait import ADVICE, WARN_ABOVE, InputWaitMeter
from distributed_ssl.engine.metrics import all_reduce_mean
from distributed_ssl.engine.param_groups import param_groups
from distributed_ssl.engine.probe_logging import collapse_warning, log_probe
from distributed_ssl.engine.progress import EvalProgress, NoteProgress, ProgressSender, StepProgress
from distributed_ssl.engine.warm_start import load_encoder_weights
from distributed_ssl.evaluation.probe_suite import probe_encoder
from distributed_ssl.evaluation.raw_features import raw_feature_knn
from distributed_ssl.methods.ema_teacher import ema_teachers
from distributed_ssl.methods.registry import build_encoder_for, build_method
from distributed_ssl.modalities.registry import get_modality
from distributed_ssl.tracking.mlflow_tracking import RunLogger, logger_retry_kwargs
from distributed_ssl.util.log_file import LogFile
from distributed_ssl.util.run_dir import ENCODER_FILE, RunDir
from distributed_ssl.util.schedules import warmup_cosine

PREVIEW_FILE = "views.png"

log = logging.getLogger("distributed_ssl.train")


def _device(cfg: SSLConfig) -> torch.device:
    if cfg.scaling.use_gpu and torch.cuda.is_available():
        return ray.train.torch.get_device()
    return torch.device("cpu")


def _to_device(batch: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in batch.items()}


def full_encoder_state(engine: Any, zero_stage: int) -> dict[str, torch.Tensor] | None:
    """The encoder's full fp32 weights on rank 0 (gathering ZeRO-3 shards on every rank)."""
    encoder = engine.module.encoder
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    if zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(encoder.parameters()), modifier_rank=None):
            state = {k: v.detach().float().cpu().clone() for k, v in encoder.state_dict().items()}
    else:
        state = {k: v.detach().float().cpu().clone() for k, v in encoder.state_dict().items()}
    return state if rank == 0 else None


def train_worker(config: dict[str, Any]) -> None:
    """Entry point of every Ray Train worker; `config` is built by `launch.trainer`.

    A deterministic data error (see engine/data_errors.py) is recorded in the run dir before it is raised, and a
    worker group restarted after one ends at once instead of training into the same error again.
    """
    run_dir = RunDir(config["run_dir"])
    if read_fatal(run_dir) is not None:
        ray.train.report({"fatal_data_error": True})
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker_log = LogFile(f"rank{ray.train.get_context().get_world_rank()}.log")  # RUN_DIR/logs/rankR.log
    try:
        _train(config)
    except Exception as exc:
        cause = deterministic_cause(exc)
        if cause is not None:
            record_fatal(run_dir, cause)
        raise
    finally:
        worker_log.save_to(run_dir)
        worker_log.discard()


def _train(config: dict[str, Any]) -> None:
    import deepspeed

    cfg = SSLConfig.model_validate(config["cfg"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    steps_per_epoch: int = config["steps_per_epoch"]
    total_steps: int = config["total_steps"]  # optimizer steps
    device = _device(cfg)
    dtype = torch.bfloat16 if cfg.deepspeed.precision == "bf16" else torch.float32
    torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
    np.random.seed(cfg.train.seed + rank)
    logger = RunLogger(config["tracking_uri"], config["mlflow_run_id"], buffer_dir=config["run_dir"],
                       **logger_retry_kwargs(cfg)) if rank == 0 else None
    console = ProgressSender(config.get("progress_board") if rank == 0 else None)

    method = build_method(cfg).to(device)
    # decoded once by the driver (bad records counted there, before any worker started), shared via the object store
    eval_splits = ray.get(config["eval_splits"]) if config.get("eval_splits") is not None else None
    knn_random = knn_raw = baseline = None
    if eval_splits is not None:
        # The untrained weights are the random-init baseline: same architecture, same probes.
        method.eval()
        baseline = probe_encoder(method.embed, eval_splits, cfg.eval, device, torch.float32)
        knn_random = baseline.knn_top1
        method.train()
        knn_raw = raw_feature_knn(cfg.modality.name, eval_splits, cfg.eval)  # hand-made features, no encoder
    if cfg.model.init_from:  # warm start after the baseline, so the baseline stays a random init
        load_encoder_weights(method, cfg.model.init_from)
        for teacher in ema_teachers(method):  # the teacher starts from the warm-started student
            teacher.copy_from_student()
    method.set_total_steps(total_steps)

    trainable = method.trainable_module()
    optimizer = torch.optim.AdamW(param_groups(trainable, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                  betas=cfg.optim.betas)
    skip_inference_only_ops()  # no ~90 s JIT build of an op training never uses
    engine, optimizer, _, _ = deepspeed.initialize(model=method, optimizer=optimizer,
                                                   config=build_deepspeed_config(cfg, world))
    lr_schedule = warmup_cosine(total_steps, cfg.optim.lr, cfg.optim.min_lr,
                                int(cfg.optim.warmup_fraction * total_steps))

    meta = {"global_step": 0, "epoch": 0, "micro_in_epoch": 0, "knn_top1": None, "probe": {}}
    checkpoint = ray.train.get_checkpoint()  # this run's own latest first: a worker-group restart continues it
    if checkpoint is None and config.get("init_checkpoint"):  # e.g. the PBT donor's state
        checkpoint = ray.train.Checkpoint(config["init_checkpoint"])
    if checkpoint is not None:
        decays = [1.0 if group["weight_decay"] > 0 else 0.0 for group in optimizer.param_groups]
        with checkpoint.as_directory() as ckpt_dir:
            meta = load_checkpoint(engine, ckpt_dir)
        # The restored optimizer state carries the saved weight decay; this run's value wins (PBT may change it).
        for group, decay in zip(optimizer.param_groups, decays, strict=True):
            group["weight_decay"] = cfg.optim.weight_decay * decay
        if rank == 0:
            log.info("resumed from step %d (epoch %d)", meta["global_step"], meta["epoch"])
    global_step, start_epoch = int(meta["global_step"]), int(meta["epoch"])
    skip_micro = int(meta["micro_in_epoch"])
    if logger and checkpoint is not None:
        logger.tags({"resumed_from_step": str(global_step)})

    def report(metrics: dict[str, Any], with_checkpoint: bool) -> None:
        ckpt_dir = save_checkpoint(engine, meta, rank) if with_checkpoint else None
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None)
        if ckpt_dir:
            shutil.rmtree(ckpt_dir, ignore_errors=True)

    shard = ray.train.get_dataset_shard("train")
    accum = cfg.train.grad_accum
    knn = meta.get("knn_top1")
    probe = dict(meta.get("probe") or {})  # linear probe and collapse metrics of the last eval epoch
    samples_seen, train_time = 0, 0.0
    meter, warned_wait = InputWaitMeter(), False
    last_loss = float("nan")
    preview_done = checkpoint is not None
    per_pass, epochs_left_in_pass = int(config.get("epochs_per_pass") or 1), 0
    batches = iter(())
    for epoch in range(start_epoch, cfg.train.epochs):
        if global_step >= total_steps:
            break
        engine.train()
        window: dict[str, list[float]] = {}
        t_window = time.perf_counter()
        micro_in_epoch = skip_micro
        if epochs_left_in_pass == 0:  # a new pass of the data: `epochs_per_pass` epochs through one iterator
            batches = iter(shard.iter_torch_batches(
                batch_size=cfg.train.batch_size, drop_last=True,
                local_shuffle_buffer_size=cfg.data.local_shuffle_buffer if cfg.data.shuffle == "local" else None))
            epochs_left_in_pass = per_pass
        epochs_left_in_pass -= 1
        meter.waiting()
        while micro_in_epoch < steps_per_epoch * accum and global_step < total_steps:
            batch = next(batches, None)
            if batch is None:
                break
            meter.arrived()
            if not preview_done and rank == 0 and logger:
                _log_preview(batch, cfg, logger, RunDir(config["run_dir"]))
                preview_done = True
            lr = float(lr_schedule[min(global_step, total_steps - 1)])
            for group in optimizer.param_groups:
                group["lr"] = lr
            t0 = time.perf_counter()
            batch = _to_device(batch, device, dtype)
            batch.pop("label", None)
            out = engine(batch)
            engine.backward(out["loss"])
            engine.step()
            train_time += time.perf_counter() - t0
            meter.computed()
            micro_in_epoch += 1
            samples_seen += cfg.train.batch_size
            for k, v in out.items():
                window.setdefault(k, []).append(float(v.detach().float()))
            if micro_in_epoch % accum:
                meter.waiting()
                continue
            global_step += 1
            method.on_step_end(global_step)
            if global_step % cfg.train.log_every == 0 or global_step == total_steps:
                elapsed = time.perf_counter() - t_window
                values = {k: float(np.mean(v)) for k, v in window.items()}
                values["samples_per_s"] = len(window["loss"]) * cfg.train.batch_size / max(elapsed, 1e-9)
                values["input_wait_fraction"] = meter.window_fraction()
                values = all_reduce_mean(values)
                values["samples_per_s"] *= world
                values["lr"] = lr
                values["epoch"] = epoch
                last_loss = values["loss"]
                console.post(StepProgress(global_step, total_steps, epoch, cfg.train.epochs, values["loss"],
                                          values["samples_per_s"], values["input_wait_fraction"]))
                if logger:
                    logger.metrics(values, global_step)
                    log.info("step %d/%d loss %.4f lr %.2e %.1f samples/s, input wait %.0f%%", global_step,
                             total_steps, values["loss"], lr, values["samples_per_s"],
                             100 * values["input_wait_fraction"])
                    late = global_step > 2 * cfg.train.log_every  # past the pipeline's start-up
                    if values["input_wait_fraction"] > WARN_ABOVE and late and not warned_wait:
                        log.warning("input wait %.0f%% of the last window: %s", 100 * values["input_wait_fraction"],
                                    ADVICE)
                        console.post(NoteProgress(f"input wait {100 * values['input_wait_fraction']:.0f}% of the "
                                                  f"last window: {ADVICE}"))
                        warned_wait = True
                window, t_window = {}, time.perf_counter()
            if global_step % cfg.train.checkpoint_every == 0 and global_step < total_steps:
                meta.update(global_step=global_step, epoch=epoch, micro_in_epoch=micro_in_epoch, knn_top1=knn,
                            probe=probe)
                report({"global_step": global_step, "loss": last_loss, "epoch": epoch}, with_checkpoint=True)
            meter.waiting()
        meter.epoch_ended()
        skip_micro = 0
        epoch_done = epoch + 1
        if eval_splits is not None and (epoch_done % cfg.train.eval_every_epochs == 0
                                        or epoch_done == cfg.train.epochs or global_step >= total_steps):
            engine.eval()
            t_eval = time.perf_counter()
            result = probe_encoder(engine.module.embed, eval_splits, cfg.eval, device, dtype)
            meter.evaluated(time.perf_counter() - t_eval)
            engine.train()
            knn = result.knn_top1
            probe = {**result.metrics(), "collapse_warning": collapse_warning(result, epoch_done)}
            log_probe(logger, result, baseline, epoch_done, global_step)
            console.post(EvalProgress(epoch_done, global_step, result.knn_top1, result.linear_top1, knn_random,
                                      baseline.linear_top1 if baseline else None, probe["collapse_warning"]))
        meta.update(global_step=global_step, epoch=epoch_done, micro_in_epoch=0, knn_top1=knn, probe=probe)
        is_last = epoch_done == cfg.train.epochs or global_step >= total_steps
        if not is_last:  # metrics only, unless PBT needs a restore point at each epoch end (see launch/pbt_trial.py)
            report({"global_step": global_step, "loss": last_loss, "epoch": epoch_done, "knn_top1": knn,
                    "linear_top1": probe.get("linear_top1"), "epoch_end": True},
                   with_checkpoint=bool(config.get("checkpoint_every_epoch")))

    state = full_encoder_state(engine, cfg.deepspeed.zero_stage)
    timing = all_reduce_mean({"sps": samples_seen / max(train_time, 1e-9), "input_wait_fraction": meter.run_fraction(),
                              "eval_seconds": meter.eval_seconds, "epoch_gap_seconds": meter.mean_epoch_gap()})
    throughput = timing.pop("sps") * world
    final = {"global_step": global_step, "epoch": int(meta["epoch"]), "loss": last_loss, "knn_top1": knn,
             "knn_top1_random_init": knn_random, "samples_per_s": throughput, "finished": True, "epoch_end": True,
             "knn_top1_raw_features": knn_raw, **timing,
             "linear_top1_random_init": baseline.linear_top1 if baseline else None, **probe}
    if rank == 0 and state is not None:
        run_dir = RunDir(config["run_dir"])
        run_dir.save_torch(ENCODER_FILE, state)
        if logger:
            with run_dir.local_file(ENCODER_FILE) as path:
                logger.artifact(path)
            if cfg.tracking.log_model:
                _log_encoder_model(cfg, state, eval_splits, config["tracking_uri"], config["mlflow_run_id"])
            linear = ({"linear_top1_final": probe["linear_top1"], "linear_top1_random_init": baseline.linear_top1}
                      if baseline is not None and "linear_top1" in probe else {})  # absent: resumed pre-probe run
            run_metrics = {"train_samples_per_s": throughput, **{f"run_{k}": v for k, v in timing.items()}}
            raw = {"knn_top1_raw_features": knn_raw} if knn_raw is not None else {}
            logger.metrics({"knn_top1_final": knn, "knn_top1_random_init": knn_random, **raw, **run_metrics,
                            **linear} if knn is not None else run_metrics, global_step)
    report(final, with_checkpoint=True)


def _log_encoder_model(cfg: SSLConfig, state: dict[str, torch.Tensor], eval_splits: dict | None, tracking_uri: str,
                       run_id: str) -> None:
    """The trained encoder as an MLflow model (inputs → embeddings, signature, input example from the eval set),
    so `mlflow.pyfunc.load_model("runs:/RUN/encoder_model")` embeds without this package's training code."""
    try:
        from distributed_ssl.export.example_inputs import example_inputs
        from distributed_ssl.export.mlflow_model import log_encoder_model

        encoder = build_encoder_for(cfg)
        encoder.load_state_dict(state)
        if eval_splits:
            example = next(iter(eval_splits.values())).inputs[:8]
        else:
            example = example_inputs(cfg).inputs
        log_encoder_model(run_id, tracking_uri, encoder.eval(), example)
    except Exception as exc:  # the encoder.pt artifact is already logged; the model is a convenience on top
        log.warning("could not log the encoder as an MLflow model: %s", str(exc).splitlines()[0][:300])


def _log_preview(batch: dict[str, torch.Tensor], cfg: SSLConfig, logger: RunLogger, run_dir: RunDir) -> None:
    """A PNG of the first batch's views and masks (RUN_DIR/views.png and MLflow), so a person can see what the
    model is trained on."""
    try:
        arrays = {k: v.numpy() for k, v in batch.items()}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, PREVIEW_FILE)
            get_modality(cfg.modality.name).preview(arrays, cfg, path)
            run_dir.upload(path, PREVIEW_FILE)
            logger.artifact(path)
    except Exception as exc:  # a preview must never stop training
        log.warning("could not write the views preview: %s", exc)

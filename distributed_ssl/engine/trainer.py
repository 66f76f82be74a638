"""One worker's training run, torchtitan's shape: `Trainer(cfg, reporter).fit()`.

`setup()` builds the method, probes the random-init baseline, warm-starts, builds the optimizer, the DeepSpeed
engine and the per-step schedules, and restores the latest checkpoint. `fit()` runs the epochs: `train_step` per
micro-batch (gradient accumulation inside DeepSpeed), windowed metrics, checkpoints every
`train.checkpoint_every` optimizer steps, `evaluate` every `train.eval_every_epochs`, and the final report with the
encoder. `state_dict`/`load_state_dict` are the counters saved beside the DeepSpeed state in every checkpoint.

It knows no modality and no launcher: batches arrive as `view_i` / `mask` tensors from the `Reporter`
(engine/reporter.py: Ray Train in a worker, a list in a test), which also takes the typed reports (engine/reports.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.engine.checkpointing import load_checkpoint, save_checkpoint
from distributed_ssl.engine.deepspeed_config import build_deepspeed_config
from distributed_ssl.engine.deepspeed_ops import initialize_engine
from distributed_ssl.engine.early_start import EarlyStart
from distributed_ssl.engine.input_wait import ADVICE, WARN_ABOVE, InputWaitMeter
from distributed_ssl.engine.metrics import all_reduce_mean
from distributed_ssl.engine.param_groups import param_groups
from distributed_ssl.engine.precision import precision_for
from distributed_ssl.engine.probe_logging import collapse_warning, log_final, log_probe
from distributed_ssl.engine.progress import EvalProgress, NoteProgress, ProgressSender, StepProgress
from distributed_ssl.engine.reporter import Batch, Reporter
from distributed_ssl.engine.reports import EpochEndReport, FinalReport, Report, StepReport
from distributed_ssl.engine.run_artifacts import log_preview, save_encoder
from distributed_ssl.engine.schedules import LR, apply_values, build_schedules, set_weight_decay, values_at
from distributed_ssl.engine.warm_start import load_encoder_weights
from distributed_ssl.engine.zero_gather import full_state, install_gather
from distributed_ssl.evaluation.probe_suite import ProbeResult, on_rank0, probe_encoder
from distributed_ssl.evaluation.raw_features import raw_feature_knn
from distributed_ssl.methods.ema_teacher import ema_teachers
from distributed_ssl.methods.registry import build_method
from distributed_ssl.tracking.mlflow_tracking import RunLogger, logger_retry_kwargs
from distributed_ssl.util.run_dir import RunDir

log = logging.getLogger("distributed_ssl.train")


@dataclass
class TrainState:
    """The counters a checkpoint carries (its `meta.json`): where training stands and the last eval's results."""

    global_step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch in progress (epochs done, at an epoch end)
    micro_in_epoch: int = 0  # micro-batches done in that epoch
    knn_top1: float | None = None
    probe: dict[str, Any] = field(default_factory=dict)  # linear probe and collapse metrics of the last eval


class Trainer:
    """`steps_per_epoch` and `total_steps` count optimizer steps and are the same on every rank (see
    launch/trainer.py's `plan_steps`). With `tracking_uri` and `mlflow_run_id`, rank 0 logs to MLflow; with
    `run_dir`, it writes the views preview and `encoder.pt` there. `checkpoint_every_epoch` puts a checkpoint on
    every epoch-end report (PBT restores trials there). `epochs_per_pass` epochs come through one data iterator
    (the dataset holds them, see modalities/train_dataset.py); `progress` carries rank 0's progress to the
    driver's console (engine/progress.py)."""

    def __init__(self, cfg: SSLConfig, reporter: Reporter, *, steps_per_epoch: int, total_steps: int,
                 eval_splits: dict | None = None, run_dir: str | None = None, tracking_uri: str | None = None,
                 mlflow_run_id: str | None = None, checkpoint_every_epoch: bool = False, epochs_per_pass: int = 1,
                 progress: ProgressSender | None = None):
        self.cfg, self.reporter = cfg, reporter
        self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps
        self.eval_splits, self.checkpoint_every_epoch = eval_splits, checkpoint_every_epoch
        self.epochs_per_pass, self._epochs_left_in_pass = max(1, epochs_per_pass), 0
        self._batches: Any = iter(())
        self.progress = progress or ProgressSender(None)
        self.run_dir = RunDir(run_dir) if run_dir else None
        self.tracking_uri = tracking_uri
        self.rank, self.world = reporter.rank, reporter.world_size
        self.device = reporter.device(cfg.scaling.use_gpu)
        self.precision = precision_for(cfg.deepspeed.precision)
        self.dtype = self.precision.dtype
        self.logger = (RunLogger(tracking_uri, mlflow_run_id, buffer_dir=run_dir, **logger_retry_kwargs(cfg))
                       if self.rank == 0 and tracking_uri and mlflow_run_id else None)
        self.state = TrainState()
        self.method: Any = None
        self.engine: Any = None
        self.optimizer: Any = None
        self.schedules: dict[str, np.ndarray] = {}
        self.baseline: ProbeResult | None = None  # the random-init encoder's probes
        self.knn_raw: float | None = None  # kNN on hand-made features, no encoder
        self.meter = InputWaitMeter()
        self.samples_seen, self.train_time, self.last_loss = 0, 0.0, float("nan")
        self.resumed = self.warned_wait = self._preview_done = False
        self._lr = 0.0
        self._window: dict[str, list[float]] = {}
        self._t_window = time.perf_counter()

    def setup(self) -> Trainer:
        """Method, baseline probes, warm start, optimizer, DeepSpeed engine, schedules; then restore."""
        cfg = self.cfg
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        np.random.seed(cfg.train.seed + self.rank)
        self.method = build_method(cfg).to(self.device)
        self._probe_baseline()
        if cfg.model.init_from:  # warm start after the baseline, so the baseline stays a random init
            load_encoder_weights(self.method, cfg.model.init_from)
            for teacher in ema_teachers(self.method):  # the teacher starts from the warm-started student
                teacher.copy_from_student()
        self.schedules = build_schedules(cfg, self.method.schedules, self.total_steps)
        optimizer = torch.optim.AdamW(param_groups(self.method.trainable_module(), cfg.optim.weight_decay),
                                      lr=cfg.optim.lr, betas=cfg.optim.betas)
        self.engine, self.optimizer = initialize_engine(self.method, optimizer, build_deepspeed_config(cfg, self.world))
        install_gather(self.method)  # EMA updates read the student's full weights under ZeRO-3
        checkpoint = self.reporter.latest_checkpoint()
        if checkpoint is not None:
            try:
                self.restore(checkpoint)
            finally:
                self.reporter.release_checkpoint()
        return self

    def _probe_baseline(self) -> None:
        """The untrained weights are the random-init baseline: same architecture, same probes."""
        if self.eval_splits is None:
            return
        self.method.eval()
        self.baseline = probe_encoder(self.method.embed, self.eval_splits, self.cfg.eval, self.device, torch.float32)
        self.method.train()
        self.knn_raw = on_rank0(lambda: raw_feature_knn(self.cfg.modality.name, self.eval_splits, self.cfg.eval))

    def state_dict(self) -> dict[str, Any]:
        """The counters saved with a checkpoint (`meta.json`); model and optimizer are DeepSpeed's part."""
        return asdict(self.state)

    def load_state_dict(self, meta: dict[str, Any]) -> None:
        self.state = TrainState(global_step=int(meta["global_step"]), epoch=int(meta["epoch"]),
                                micro_in_epoch=int(meta.get("micro_in_epoch") or 0), knn_top1=meta.get("knn_top1"),
                                probe=dict(meta.get("probe") or {}))

    def save_checkpoint(self) -> str:
        """This rank's part of a checkpoint (DeepSpeed state + counters) in a fresh local directory."""
        return save_checkpoint(self.engine, self.state_dict(), self.rank)

    def restore(self, checkpoint_dir: str) -> None:
        """Model, optimizer and counters from a checkpoint directory, keeping this run's weight decay."""
        decays = [group["decays"] for group in self.optimizer.param_groups]
        self.load_state_dict(load_checkpoint(self.engine, checkpoint_dir))
        for group, decay in zip(self.optimizer.param_groups, decays, strict=True):
            group["decays"] = decay  # the loaded groups may come from a checkpoint written before the key existed
        # The restored optimizer state carries the saved weight decay; this run's value wins (PBT may change it).
        set_weight_decay(self.optimizer, self.cfg.optim.weight_decay)
        self.resumed = True
        if self.rank == 0:
            log.info("resumed from step %d (epoch %d)", self.state.global_step, self.state.epoch)
        if self.logger:
            self.logger.tags({"resumed_from_step": str(self.state.global_step)})

    def report(self, record: Report, with_checkpoint: bool) -> None:
        self.reporter.report(record, self.save_checkpoint() if with_checkpoint else None)

    def fit(self) -> FinalReport:
        """Train to `total_steps` or `train.epochs`, whichever comes first, and send the final report."""
        if self.engine is None:
            self._start_pass()  # the data pipeline starts up while the method, probes and DeepSpeed do
            self.setup()
        for epoch in range(self.state.epoch, self.cfg.train.epochs):
            if self.state.global_step >= self.total_steps:
                break
            self._train_epoch(epoch)
            self._end_epoch(epoch + 1)
        return self._finish()

    def _start_pass(self) -> None:
        """A new pass of the data iterator (`epochs_per_pass` epochs), its first batch already on the way."""
        cfg = self.cfg
        shuffle = cfg.data.local_shuffle_buffer if cfg.data.shuffle == "local" else None
        self._batches = EarlyStart(iter(self.reporter.batches(cfg.train.batch_size, shuffle)))
        self._epochs_left_in_pass = self.epochs_per_pass

    def _train_epoch(self, epoch: int) -> None:
        """The micro-batches of one epoch; a resumed epoch does only those it had left."""
        cfg, s = self.cfg, self.state
        self.engine.train()
        self._reset_window()
        s.epoch, limit = epoch, self.steps_per_epoch * cfg.train.grad_accum
        if self._epochs_left_in_pass == 0:  # a new pass of the data
            self._start_pass()
        self._epochs_left_in_pass -= 1
        self.meter.waiting()
        while s.micro_in_epoch < limit and s.global_step < self.total_steps:
            batch = next(self._batches, None)
            if batch is None:
                break
            self.meter.arrived()
            self._maybe_preview(batch)
            self.train_step(batch)
            self.meter.computed()
            if s.micro_in_epoch % cfg.train.grad_accum == 0:
                self._after_optimizer_step()
            self.meter.waiting()
        self.meter.epoch_ended()

    def train_step(self, batch: Batch) -> dict[str, float]:
        """Forward, backward and DeepSpeed's step on one micro-batch (the optimizer steps once per
        `train.grad_accum` of them); returns the method's scalars."""
        s = self.state
        self._apply_schedules(s.global_step)
        t0 = time.perf_counter()
        batch = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                 for k, v in batch.items() if k != "label"}
        with self.precision.forward_context(self.device):
            out = self.engine(batch)
        self.engine.backward(out["loss"])
        self.engine.step()
        self.train_time += time.perf_counter() - t0
        s.micro_in_epoch += 1
        self.samples_seen += self.cfg.train.batch_size
        values = {k: float(v.detach().float()) for k, v in out.items()}
        for k, v in values.items():
            self._window.setdefault(k, []).append(v)
        if s.micro_in_epoch % self.cfg.train.grad_accum == 0:
            s.global_step += 1
            self.method.on_step_end(s.global_step)
        return values

    def _apply_schedules(self, step: int) -> None:
        """Every schedule's value for optimizer step `step` (0-based): lr to the optimizer, the rest to the method."""
        values = values_at(self.schedules, min(step, self.total_steps - 1))
        self._lr = values[LR]
        apply_values(values, self.optimizer, self.method)

    def _maybe_preview(self, batch: Batch) -> None:
        """Once per run, on the first batch (a resumed run showed its own already)."""
        if not self._preview_done and not self.resumed and self.rank == 0 and self.logger and self.run_dir:
            log_preview(batch, self.cfg, self.logger, self.run_dir)
        self._preview_done = True

    def _after_optimizer_step(self) -> None:
        s, cfg = self.state, self.cfg
        if s.global_step % cfg.train.log_every == 0 or s.global_step == self.total_steps:
            self._log_window()
        if s.global_step % cfg.train.checkpoint_every == 0 and s.global_step < self.total_steps:
            self.report(StepReport(s.global_step, s.epoch, self.last_loss), with_checkpoint=True)

    def _reset_window(self) -> None:
        self._window, self._t_window = {}, time.perf_counter()

    def _log_window(self) -> None:
        """The means of the window since the last log, over ranks; input wait; throughput of all ranks."""
        elapsed = time.perf_counter() - self._t_window
        values = {k: float(np.mean(v)) for k, v in self._window.items()}
        values["samples_per_s"] = len(self._window["loss"]) * self.cfg.train.batch_size / max(elapsed, 1e-9)
        values["input_wait_fraction"] = self.meter.window_fraction()
        values = all_reduce_mean(values)
        values["samples_per_s"] *= self.world
        values.update(lr=self._lr, epoch=self.state.epoch)
        self.last_loss = values["loss"]
        self._reset_window()
        step, wait = self.state.global_step, values["input_wait_fraction"]
        self.progress.post(StepProgress(step, self.total_steps, self.state.epoch, self.cfg.train.epochs,
                                        values["loss"], values["samples_per_s"], wait))
        if not self.logger:
            return
        self.logger.metrics(values, step)
        log.info("step %d/%d loss %.4f lr %.2e %.1f samples/s, input wait %.0f%%", step, self.total_steps,
                 values["loss"], self._lr, values["samples_per_s"], 100 * wait)
        late = step > 2 * self.cfg.train.log_every  # past the pipeline's start-up
        if wait > WARN_ABOVE and late and not self.warned_wait:
            log.warning("input wait %.0f%% of the last window: %s", 100 * wait, ADVICE)
            self.progress.post(NoteProgress(f"input wait {100 * wait:.0f}% of the last window: {ADVICE}"))
            self.warned_wait = True

    def _is_last(self, epochs_done: int) -> bool:
        return epochs_done == self.cfg.train.epochs or self.state.global_step >= self.total_steps

    def _end_epoch(self, epochs_done: int) -> None:
        """Probe when due; report the epoch end when it carries a probe or PBT needs a restore point there.

        An epoch without either is not reported: a Ray Train report is a barrier of all workers with the
        controller (about 2 s here), and nothing reads an epoch end without an objective (progress goes to the
        console's board, metrics to MLflow)."""
        s = self.state
        probed = self.eval_splits is not None and (epochs_done % self.cfg.train.eval_every_epochs == 0
                                                   or self._is_last(epochs_done))
        if probed:
            t_eval = time.perf_counter()
            result = self.evaluate()
            self.meter.evaluated(time.perf_counter() - t_eval)
            s.knn_top1 = result.knn_top1
            s.probe = {**result.metrics(), "collapse_warning": collapse_warning(result, epochs_done)}
            log_probe(self.logger, result, self.baseline, epochs_done, s.global_step)
            base = self.baseline
            self.progress.post(EvalProgress(epochs_done, s.global_step, result.knn_top1, result.linear_top1,
                                            base.knn_top1 if base else None, base.linear_top1 if base else None,
                                            s.probe["collapse_warning"]))
        s.epoch, s.micro_in_epoch = epochs_done, 0
        if not self._is_last(epochs_done) and (probed or self.checkpoint_every_epoch):
            self.report(EpochEndReport(s.global_step, epochs_done, self.last_loss, s.knn_top1,
                                       s.probe.get("linear_top1")), with_checkpoint=self.checkpoint_every_epoch)

    def evaluate(self) -> ProbeResult | None:
        """kNN, linear probe and collapse metrics of the current encoder on the eval set (None without one):
        every rank embeds its share, rank 0 probes the gathered features, every rank gets the result."""
        if self.eval_splits is None:
            return None
        self.engine.eval()
        try:
            embed = self.precision.wrap(self.engine.module.embed, self.device)  # the probes themselves stay fp32
            return probe_encoder(embed, self.eval_splits, self.cfg.eval, self.device, self.dtype)
        finally:
            self.engine.train()

    def _finish(self) -> FinalReport:
        """The encoder saved and logged (rank 0), run-level timing over ranks, the final report with a checkpoint."""
        s = self.state
        encoder_state = full_state(self.engine.module.delivered_encoder())  # every rank: ZeRO-3 gathers
        timing = all_reduce_mean({"sps": self.samples_seen / max(self.train_time, 1e-9),
                                  "input_wait_fraction": self.meter.run_fraction(),
                                  "eval_seconds": self.meter.eval_seconds,
                                  "epoch_gap_seconds": self.meter.mean_epoch_gap()})
        throughput = timing.pop("sps") * self.world
        final = FinalReport(
            global_step=s.global_step, epoch=s.epoch, loss=self.last_loss, samples_per_s=throughput, **timing,
            knn_top1=s.knn_top1, knn_top1_random_init=self.baseline.knn_top1 if self.baseline else None,
            knn_top1_raw_features=self.knn_raw,
            linear_top1_random_init=self.baseline.linear_top1 if self.baseline else None,
            probe={k: v for k, v in s.probe.items() if k != "knn_top1"})
        if self.rank == 0 and self.run_dir is not None:
            save_encoder(encoder_state, self.cfg, self.run_dir, self.logger, self.tracking_uri, self.eval_splits)
            log_final(self.logger, final)
        self.report(final, with_checkpoint=True)
        return final

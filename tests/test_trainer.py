"""The Trainer without Ray: one-process gloo group, DeepSpeed on the CPU, the debug ViT, real image views.

Every method trains a few steps; checkpoints round trip; a run resumed mid-epoch continues at the right step;
the probes, schedules and typed reports behave as the launcher expects.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

from distributed_ssl.config import load_config
from distributed_ssl.engine.reporter import InProcessReporter
from distributed_ssl.engine.reports import (
    EpochEndReport,
    FinalReport,
    StepReport,
    is_epoch_end,
    is_final,
    parse_report,
)
from distributed_ssl.engine.schedules import build_schedules
from distributed_ssl.engine.trainer import Trainer
from distributed_ssl.evaluation.labeled_set import LabeledSplit
from distributed_ssl.evaluation.raw_features import raw_feature_knn
from distributed_ssl.methods.registry import build_encoder_for, view_spec_for
from distributed_ssl.modalities.registry import build_modality
from tests.conftest import free_port

BATCH = 4
METHOD_OVERRIDES = {
    "simclr": [],
    "byol": ["method.momentum_base=0.9"],
    "dino": ["method.num_local_views=2", "method.dino_out_dim=64", "method.momentum_base=0.9"],
    "mae": [],
    "jepa": ["method.predictor_dim=32", "method.predictor_depth=1", "method.momentum_base=0.9"],
}


pytestmark = pytest.mark.usefixtures("gloo_group")

# Small heads, set only on the methods that have them (a key of another method is refused).
HEAD_KEYS = {"simclr": ["method.proj_hidden_dim=32", "method.proj_dim=16"],
             "dino": ["method.proj_hidden_dim=32", "method.proj_dim=16"],
             "byol": ["method.proj_hidden_dim=32", "method.proj_dim=16", "method.predictor_hidden_dim=32"]}


def _cfg(method: str, *extra: str):
    return load_config(None, [f"method.name={method}", "model.encoder=vit_debug", f"train.batch_size={BATCH}",
                              "train.log_every=1", "train.checkpoint_every=1000", "train.epochs=1",
                              *HEAD_KEYS.get(method, []), "tracking.log_model=false", *METHOD_OVERRIDES[method],
                              *extra])


def _batches(cfg, n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """`n` training batches made by the image modality's own view code, as the data pipeline makes them."""
    g = torch.Generator().manual_seed(seed)
    modality, spec = build_modality(cfg), view_spec_for(cfg)
    return [{k: torch.from_numpy(v) for k, v in modality.make_views(torch.rand(BATCH, 3, 32, 32, generator=g),
                                                                    spec, g).items()} for _ in range(n)]


def _eval_splits() -> dict[str, LabeledSplit]:
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(48) % 4
    inputs = torch.rand(48, 3, 32, 32, generator=g) + labels.view(-1, 1, 1, 1) * 0.5
    return {"all": LabeledSplit(inputs, labels, 4)}


def _trainer(cfg, reporter, steps_per_epoch: int, **kwargs) -> Trainer:
    total = kwargs.pop("total_steps", steps_per_epoch * cfg.train.epochs)
    return Trainer(cfg, reporter, steps_per_epoch=steps_per_epoch, total_steps=total, **kwargs)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.method.state_dict().items()
            if isinstance(v, torch.Tensor) and v.is_floating_point()}


@pytest.mark.parametrize("method", sorted(METHOD_OVERRIDES))
def test_every_method_trains_a_few_steps(method, tmp_path):
    cfg = _cfg(method)
    reporter = InProcessReporter(_batches(cfg, 3), root=tmp_path)
    trainer = _trainer(cfg, reporter, steps_per_epoch=3).setup()
    before = _weights(trainer)
    teachers = [t.module for t in trainer.method.modules() if hasattr(t, "copy_from_student")]
    teacher_before = [{k: v.clone() for k, v in t.state_dict().items()} for t in teachers]
    final = trainer.fit()
    assert isinstance(final, FinalReport) and final.global_step == 3 and final.epoch == 1
    assert math.isfinite(final.loss)
    after = _weights(trainer)
    moved = [k for k in before if k.startswith("encoder.") and not torch.equal(before[k], after[k])]
    assert moved, "the encoder did not change"
    for t, start in zip(teachers, teacher_before, strict=True):  # BYOL, DINO, JEPA: the EMA teacher followed
        assert any(not torch.equal(v, t.state_dict()[k]) for k, v in start.items())
    assert [type(r) for r in reporter.reports()] == [FinalReport]
    if method == "dino":  # the engine's schedule reached the method: temperature of the last step computed
        assert trainer.method.teacher_temp == pytest.approx(trainer.schedules["teacher_temp"][2])
        assert trainer.method.momentum == pytest.approx(trainer.schedules["ema_momentum"][2])


def test_gradient_accumulation_steps_once_per_accumulated_batches(tmp_path):
    cfg = _cfg("simclr", "train.grad_accum=2")
    reporter = InProcessReporter(_batches(cfg, 6), root=tmp_path)
    final = _trainer(cfg, reporter, steps_per_epoch=3).fit()
    assert final.global_step == 3 and final.samples_per_s > 0


def test_checkpoint_round_trip_restores_weights_optimizer_and_counters(tmp_path):
    cfg = _cfg("byol")
    reporter = InProcessReporter(_batches(cfg, 2), root=tmp_path / "a")
    trained = _trainer(cfg, reporter, steps_per_epoch=2)
    trained.fit()
    (record, checkpoint), = reporter.records
    assert isinstance(record, FinalReport) and checkpoint is not None
    fresh = InProcessReporter([], root=tmp_path / "b")
    fresh.restore_from = checkpoint
    restored = _trainer(cfg, fresh, steps_per_epoch=2).setup()
    assert restored.state_dict() == trained.state_dict()
    assert restored.state_dict()["global_step"] == 2 and restored.state_dict()["epoch"] == 1
    expected, got = _weights(trained), _weights(restored)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    teacher = {k: v for k, v in trained.method.teacher.module.state_dict().items()}
    assert all(torch.equal(v, restored.method.teacher.module.state_dict()[k]) for k, v in teacher.items())
    assert restored.optimizer.param_groups[0]["weight_decay"] == cfg.optim.weight_decay


def test_restore_keeps_this_runs_weight_decay(tmp_path):
    """PBT changes optim.weight_decay between restarts; the restored optimizer state must not win."""
    cfg = _cfg("simclr")
    reporter = InProcessReporter(_batches(cfg, 1), root=tmp_path)
    _trainer(cfg, reporter, steps_per_epoch=1).fit()
    changed = cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"weight_decay": 0.2})})
    again = InProcessReporter([], root=tmp_path / "b")
    again.restore_from = reporter.records[-1][1]
    trainer = _trainer(changed, again, steps_per_epoch=1).setup()
    assert [g["weight_decay"] for g in trainer.optimizer.param_groups] == [0.2, 0.0]


def test_resume_mid_epoch_continues_at_the_checkpointed_step(tmp_path):
    cfg = _cfg("simclr", "train.epochs=2", "train.checkpoint_every=3")
    batches = _batches(cfg, 4)
    first = InProcessReporter(batches, root=tmp_path / "first")
    _trainer(cfg, first, steps_per_epoch=4, total_steps=8).fit()
    steps = [(type(r).__name__, r.global_step, r.epoch) for r in first.reports()]
    # no eval set: epoch 1's end carries no objective and is not reported (a Ray Train report is a barrier)
    assert steps == [("StepReport", 3, 0), ("StepReport", 6, 1), ("FinalReport", 8, 2)]

    mid_epoch = first.records[0][1]  # step 3: three of epoch 0's four micro-batches done
    resumed_reporter = InProcessReporter(batches, root=tmp_path / "resumed")
    resumed_reporter.restore_from = mid_epoch
    resumed = _trainer(cfg, resumed_reporter, steps_per_epoch=4, total_steps=8)
    calls = []
    step = resumed.train_step
    resumed.train_step = lambda batch: calls.append(resumed.state.global_step) or step(batch)
    final = resumed.fit()
    assert calls == [3, 4, 5, 6, 7]  # one step left in epoch 0, then epoch 1; none redone
    assert final.global_step == 8 and final.epoch == 2
    assert [(type(r).__name__, r.global_step) for r in resumed_reporter.reports()] == \
        [("StepReport", 6), ("FinalReport", 8)]


def test_probes_report_the_objective_at_each_epoch_end_and_the_baseline_at_the_end(tmp_path):
    cfg = _cfg("simclr", "train.epochs=2")
    reporter = InProcessReporter(_batches(cfg, 2), root=tmp_path)
    trainer = _trainer(cfg, reporter, steps_per_epoch=2, eval_splits=_eval_splits(), checkpoint_every_epoch=True)
    final = trainer.fit()
    (epoch_end, epoch_ckpt), (last, _) = reporter.records
    assert isinstance(epoch_end, EpochEndReport) and epoch_ckpt is not None  # PBT's restore point
    # the eval set's classes differ in brightness (4 classes, chance 0.25): every probe separates them
    assert epoch_end.knn_top1 > 0.5 and epoch_end.linear_top1 > 0.5
    assert last is final and final.knn_top1 > 0.5 and final.knn_top1_random_init > 0.5
    assert final.linear_top1_random_init > 0.5
    assert final.knn_top1_raw_features == pytest.approx(raw_feature_knn("image", _eval_splits(), cfg.eval))
    assert {"linear_top1", "embedding_std", "collapsed", "collapse_warning"} <= set(final.probe)
    assert final.eval_seconds > 0
    again = trainer.evaluate()
    assert again.knn_top1 == pytest.approx(final.knn_top1)  # the probe is deterministic


def test_schedules_are_per_step_arrays_of_the_run():
    cfg = _cfg("dino")
    schedules = build_schedules(cfg, ("ema_momentum", "teacher_temp"), 10)
    assert set(schedules) == {"lr", "ema_momentum", "teacher_temp"}
    assert all(len(v) == 10 for v in schedules.values())
    assert schedules["teacher_temp"][0] == pytest.approx(cfg.method.teacher_temp_start)
    assert schedules["teacher_temp"][-1] == pytest.approx(cfg.method.teacher_temp)
    assert schedules["ema_momentum"][0] == pytest.approx(0.9) and schedules["ema_momentum"][-1] == pytest.approx(1.0)


def test_reports_round_trip_through_metrics_and_ignore_tunes_keys():
    tune_keys = {"done": False, "training_iteration": 3, "trial_id": "abc", "timestamp": 1}
    records = [
        StepReport(global_step=10, epoch=0, loss=1.5),
        EpochEndReport(global_step=20, epoch=1, loss=1.2, knn_top1=0.5, linear_top1=0.6),
        EpochEndReport(global_step=20, epoch=1, loss=1.2),
        FinalReport(global_step=40, epoch=2, loss=1.0, samples_per_s=99.0, input_wait_fraction=0.1,
                    eval_seconds=2.0, epoch_gap_seconds=0.5, knn_top1=0.7, knn_top1_random_init=0.2,
                    knn_top1_raw_features=0.3, linear_top1_random_init=0.25,
                    probe={"linear_top1": 0.8, "embedding_std": 0.1, "effective_rank": 3.0,
                           "effective_rank_fraction": 0.5, "collapsed": 0.0, "collapse_warning": None}),
        FinalReport(global_step=1, epoch=1, loss=float("inf"), samples_per_s=1.0),
    ]
    for record in records:
        metrics = record.to_metrics()
        assert parse_report({**metrics, **tune_keys}) == record
        assert type(record).from_metrics(metrics) == record
    final = records[3].to_metrics()
    # the names sweeps, ASHA, PBT and summary.json read
    assert {"global_step", "epoch", "loss", "knn_top1", "linear_top1", "finished", "epoch_end"} <= set(final)
    assert is_final(final) and is_epoch_end(final)
    assert is_epoch_end(records[1].to_metrics()) and not is_final(records[1].to_metrics())
    assert not is_epoch_end(records[0].to_metrics())
    assert records[0].to_metrics() == {"global_step": 10, "epoch": 0, "loss": 1.5}
    assert parse_report({}) is None and parse_report(None) is None


def test_checkpoints_with_the_methods_old_step_counter_still_load():
    """Checkpoints written before the Trainer owned the step count hold an EMA method's `steps_done` buffer."""
    cfg = _cfg("byol")
    from distributed_ssl.methods.registry import build_method

    method = build_method(cfg)
    state = {**method.state_dict(), "steps_done": torch.tensor(7)}
    method.load_state_dict(state)  # strict, as DeepSpeed loads the module


def test_zero3_trains_an_ema_method_and_saves_the_full_encoder(tmp_path):
    """ZeRO-3 partitions the student: the EMA update and encoder.pt read it through engine/zero_gather.py."""
    from distributed_ssl.util.encoder_file import load_encoder_state

    cfg = _cfg("byol", "deepspeed.zero_stage=3")
    reporter = InProcessReporter(_batches(cfg, 2), root=tmp_path / "ckpt")
    trainer = _trainer(cfg, reporter, steps_per_epoch=2, run_dir=str(tmp_path / "run")).setup()
    teacher_before = {k: v.clone() for k, v in trainer.method.teacher.module.state_dict().items()}
    final = trainer.fit()
    assert final.global_step == 2 and math.isfinite(final.loss)
    saved = load_encoder_state(tmp_path / "run" / "encoder.pt")
    teacher = trainer.method.teacher.module.state_dict()
    assert any(not torch.equal(v, teacher[k]) for k, v in teacher_before.items())
    for name, value in saved.items():  # full tensors, the shapes of the teacher's copy of the encoder
        assert value.shape == teacher[f"encoder.{name}"].shape, name


def _probe_rank(rank: int, port: int, out: str) -> None:
    from unittest import mock

    from distributed_ssl.evaluation import probe_suite

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    cfg = _cfg("simclr")
    torch.manual_seed(0)
    encoder = build_encoder_for(cfg)
    with mock.patch.object(probe_suite, "probe_features", wraps=probe_suite.probe_features) as probed:
        result = probe_suite.probe_encoder(encoder.eval().embed, _eval_splits(), cfg.eval)
    torch.save({"result": result.metrics(), "probed": probed.call_count}, os.path.join(out, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_embed_their_shares_and_rank0_alone_probes(tmp_path):
    import torch.multiprocessing as mp

    from distributed_ssl.evaluation.probe_suite import probe_encoder

    mp.spawn(_probe_rank, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert [r["probed"] for r in ranks] == [1, 0]
    assert ranks[0]["result"] == ranks[1]["result"]
    cfg = _cfg("simclr")
    torch.manual_seed(0)
    alone = probe_encoder(build_encoder_for(cfg).eval().embed, _eval_splits(), cfg.eval).metrics()
    assert ranks[0]["result"] == pytest.approx(alone, abs=1e-5)  # one process, this test's gloo group of one


def test_several_epochs_come_through_one_data_pass(tmp_path):
    """With epochs_per_pass=2 the data iterator is opened once per two epochs and each epoch still takes
    steps_per_epoch batches of it, in order (the pass holds both epochs' records)."""
    cfg = _cfg("simclr", "train.epochs=4")
    passes: list[int] = []

    def one_pass(index: int) -> list:
        passes.append(index)
        return _batches(cfg, 4, seed=index)  # two epochs of two batches

    reporter = InProcessReporter(one_pass, root=tmp_path)
    trainer = _trainer(cfg, reporter, steps_per_epoch=2, epochs_per_pass=2)
    seen = []
    step = trainer.train_step
    trainer.train_step = lambda batch: seen.append(float(batch["view_0"].sum())) or step(batch)
    final = trainer.fit()
    assert passes == [0, 1] and final.global_step == 8 and final.epoch == 4
    expected = [float(b["view_0"].sum()) for index in (0, 1) for b in _batches(cfg, 4, seed=index)]
    assert seen == pytest.approx(expected)


def test_weight_decay_follows_its_cosine_schedule_on_the_decaying_group_only(tmp_path):
    from distributed_ssl.util.schedules import cosine_ramp

    cfg = _cfg("simclr", "optim.weight_decay=0.04", "optim.weight_decay_final=0.4")
    trainer = _trainer(cfg, InProcessReporter(_batches(cfg, 4), root=tmp_path), steps_per_epoch=4).setup()
    used: list[list[float]] = []
    step = trainer.train_step

    def recording(batch):
        values = step(batch)  # sets every schedule's value for this step, then steps
        used.append([group["weight_decay"] for group in trainer.optimizer.param_groups])
        return values

    trainer.train_step = recording
    trainer.fit()
    assert [u[0] for u in used] == pytest.approx(list(cosine_ramp(4, 0.04, 0.4)))
    assert used[0][0] == pytest.approx(0.04) and used[-1][0] == pytest.approx(0.4)
    assert all(u[1] == 0.0 for u in used)  # biases, norms and tokens never decay

"""The EMA teacher: its update rule, its momentum schedule, and equality across DeepSpeed ZeRO stages."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from distributed_ssl.engine.zero_gather import install_gather
from distributed_ssl.methods.base import Method
from distributed_ssl.methods.ema_teacher import EMATeacher, ema_teachers
from distributed_ssl.util.schedules import momentum_schedule
from tests.conftest import free_port

STEPS, MOMENTUM = 4, 0.8


def test_momentum_schedule_rises_by_cosine_from_base_to_final():
    m = momentum_schedule(11, 0.99, 1.0)
    assert m.shape == (11,) and m[0] == pytest.approx(0.99) and m[-1] == pytest.approx(1.0)
    assert m[5] == pytest.approx(0.995)  # cosine midpoint
    assert np.all(np.diff(m) > 0)
    with pytest.raises(ValueError, match="momentum"):
        momentum_schedule(10, 1.5)


def test_update_is_exponential_moving_average_and_teacher_is_frozen():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    teacher = EMATeacher(student)
    start = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    teacher.update(student, 0.9)
    for name, p in student.named_parameters():
        assert torch.allclose(teacher.module.get_parameter(name), 0.9 * start[name] + 0.1 * p, atol=1e-7)
    assert not any(p.requires_grad for p in teacher.module.parameters())
    assert list(teacher.parameters()) == []  # invisible to the optimizer and to DeepSpeed
    out = teacher(torch.randn(2, 4))
    assert not out.requires_grad


def test_teacher_weights_travel_in_the_state_dict():
    class Holder(Method):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(3, 3)
            self.teacher = EMATeacher(self.encoder)

    a, b = Holder(), Holder()
    with torch.no_grad():
        a.encoder.weight.add_(1.0)
    a.teacher.update(a.encoder, 0.5)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.teacher.module.weight, b.teacher.module.weight)
    assert ema_teachers(b) == [b.teacher]


class _TinyMethod(Method):
    """Two linear layers trained on a regression target, followed by an EMA teacher."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 8))
        self.teacher = EMATeacher(self.encoder)

    def forward(self, batch):
        target = self.teacher(batch["x"]).detach()
        return {"loss": ((self.encoder(batch["x"]) - batch["y"] - 0.1 * target) ** 2).mean()}

    def on_step_end(self, step: int) -> None:
        self.teacher.update(self.encoder, MOMENTUM)


def _teacher_after_training(stage: int, rank: int, ckpt_dir: str) -> dict[str, torch.Tensor]:
    from distributed_ssl.engine.deepspeed_ops import initialize_engine

    method = _TinyMethod()
    optimizer = torch.optim.AdamW(method.trainable_module().parameters(), lr=0.05)
    config = {"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1, "train_batch_size": 8,
              "zero_optimization": {"stage": stage, "stage3_param_persistence_threshold": 0},
              "zero_allow_untested_optimizer": True, "zero_force_ds_cpu_optimizer": False,
              "steps_per_print": 10**9}
    engine, _ = initialize_engine(method, optimizer, config)
    install_gather(method)  # as the Trainer does: the update reads the student's full weights under ZeRO-3
    gen = torch.Generator().manual_seed(100 + rank)  # every rank sees different data
    for step in range(1, STEPS + 1):
        batch = {"x": torch.randn(4, 16, generator=gen), "y": torch.randn(4, 8, generator=gen)}
        engine.backward(engine(batch)["loss"])
        engine.step()
        method.on_step_end(step)
    trained = {k: v.clone() for k, v in method.teacher.module.state_dict().items()}
    if stage == 3:  # the teacher is restored from a DeepSpeed checkpoint after being overwritten
        engine.save_checkpoint(ckpt_dir, tag="t")
        with torch.no_grad():
            for p in method.teacher.module.parameters():
                p.zero_()
        engine.load_checkpoint(ckpt_dir, tag="t")
        restored = method.teacher.module.state_dict()
        assert all(torch.equal(restored[k], v) for k, v in trained.items()), "teacher not restored"
    return trained


def _rank_main(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    results = {stage: _teacher_after_training(stage, rank, os.path.join(out_dir, "ckpt")) for stage in (0, 3)}
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ema_teacher_under_zero3_equals_zero0_and_survives_checkpoint():
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_rank_main, args=(2, free_port(), out), nprocs=2, join=True)
        ranks = [torch.load(os.path.join(out, f"rank{r}.pt"), weights_only=True) for r in range(2)]
    start = _TinyMethod().teacher.module.state_dict()
    for results in ranks:
        zero0, zero3 = results[0], results[3]
        for name, value in zero0.items():
            assert zero3[name].shape == value.shape, name
            assert torch.allclose(zero3[name], value, atol=1e-5), (name, float((zero3[name] - value).abs().max()))
            assert not torch.allclose(value, start[name], atol=1e-3), f"{name}: the teacher did not move"
    for name in ranks[0][3]:  # every rank holds the same full teacher
        assert torch.equal(ranks[0][3][name], ranks[1][3][name]), name

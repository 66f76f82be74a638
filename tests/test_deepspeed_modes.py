"""ZeRO-1, gradient accumulation, CPU optimizer offload, bf16 and bf16-mixed each train through the Trainer.

Real DeepSpeed on the CPU in this process (one-rank gloo group), the debug ViT and real image views; each mode
is checked for what it promises, not only for a finite loss. The Ray end-to-end runs cover some of these again
(tests/test_train_modalities.py).
"""

from __future__ import annotations

import math

import pytest
import torch

from distributed_ssl.engine.reporter import InProcessReporter
from tests.test_trainer import _batches, _cfg, _trainer, _weights

pytestmark = pytest.mark.usefixtures("gloo_group")


def _train(tmp_path, *overrides: str, micro_batches: int = 4):
    cfg = _cfg("simclr", *overrides)
    trainer = _trainer(cfg, InProcessReporter(_batches(cfg, micro_batches), root=tmp_path),
                       steps_per_epoch=micro_batches // cfg.train.grad_accum).setup()
    before = _weights(trainer)
    final = trainer.fit()
    after = _weights(trainer)
    assert math.isfinite(final.loss)
    assert any(not torch.equal(before[k].float(), after[k].float()) for k in before)
    return trainer, final


def test_zero1_with_gradient_accumulation_steps_once_per_two_micro_batches(tmp_path):
    trainer, final = _train(tmp_path, "deepspeed.zero_stage=1", "train.grad_accum=2")
    assert trainer.engine.zero_optimization_stage() == 1
    assert trainer.engine.gradient_accumulation_steps() == 2
    assert final.global_step == 2  # 4 micro-batches, 2 optimizer steps
    assert trainer.engine.global_steps == 2


def test_cpu_optimizer_offload_trains(tmp_path):
    trainer, final = _train(tmp_path, "deepspeed.zero_stage=2", "deepspeed.offload_optimizer=true")
    assert trainer.engine.zero_cpu_offload() and final.global_step == 4


def test_bf16_casts_the_whole_model(tmp_path):
    trainer, _ = _train(tmp_path, "deepspeed.precision=bf16")
    assert {p.dtype for p in trainer.engine.module.parameters()} == {torch.bfloat16}


def test_bf16_mixed_keeps_fp32_weights_and_runs_matmuls_in_bf16(tmp_path):
    cfg = _cfg("simclr", "deepspeed.precision=bf16-mixed")
    trainer = _trainer(cfg, InProcessReporter(_batches(cfg, 2), root=tmp_path), steps_per_epoch=2).setup()
    seen: set[torch.dtype] = set()
    linear = next(m for m in trainer.engine.module.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    final = trainer.fit()
    assert math.isfinite(final.loss)
    assert seen == {torch.bfloat16}
    assert {p.dtype for p in trainer.engine.module.parameters()} == {torch.float32}

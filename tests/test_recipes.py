"""Every recipe and sweep in jobs/configs/ loads and trains: its own method, modality, encoder and DeepSpeed set-up.

Each recipe runs two steps in this process (the Trainer with the in-process reporter, DeepSpeed on the CPU) on
batches that the pipeline's own step (`make_views_batch`) makes from real records of the small sample sets; only
the batch size, the step count and the data paths are overridden. The Ray end-to-end tests train a few recipes in
full; this one keeps the rest from rotting unseen.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from distributed_ssl.config import load_config
from distributed_ssl.data.shard_reader import read_columns
from distributed_ssl.engine.reporter import InProcessReporter
from distributed_ssl.engine.trainer import Trainer
from distributed_ssl.methods.registry import view_spec_for
from distributed_ssl.modalities.preprocess import make_views_batch
from distributed_ssl.modalities.registry import build_modality

CONFIGS = Path(__file__).resolve().parents[1] / "jobs" / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml"))
BATCH, STEPS = 8, 2

pytestmark = pytest.mark.usefixtures("gloo_group")


def _records(data_dir: str, columns: list[str], count: int) -> dict[str, np.ndarray]:
    """The first `count` records of a train split as Ray Data's numpy batches hold them."""
    return {name: values[:count] for name, values in read_columns(f"{data_dir}/train", columns).items()}


def test_every_recipe_in_jobs_configs_is_covered():
    assert len(RECIPES) >= 17 and {p.stem.split("_")[0] for p in RECIPES} == {"image", "audio", "lidar", "sweep"}


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_loads_and_trains(recipe, sample_sets, tmp_path):
    probe = load_config(recipe)
    data = sample_sets[probe.modality.name]
    cfg = load_config(recipe, [f"data.train={data}/train", f"data.eval={data}", f"run.dir={tmp_path / 'run'}",
                               f"train.batch_size={BATCH}", f"train.max_steps={STEPS}", "train.epochs=1",
                               "train.log_every=1", "train.checkpoint_every=1000", "tracking.log_model=false"])
    modality, spec = build_modality(cfg), view_spec_for(cfg)
    records = _records(data, modality.record_columns, BATCH * STEPS)
    batches = []
    for step in range(STEPS):
        part = {k: v[step * BATCH:(step + 1) * BATCH] for k, v in records.items()}
        views = make_views_batch(part, modality, spec, seed=step)
        batches.append({k: torch.from_numpy(v) for k, v in views.items() if k != "label"})
    reporter = InProcessReporter(batches, root=tmp_path / "checkpoints")
    trainer = Trainer(cfg, reporter, steps_per_epoch=STEPS, total_steps=STEPS).setup()
    before = {k: v.detach().clone() for k, v in trainer.method.encoder.state_dict().items()
              if v.is_floating_point()}
    final = trainer.fit()
    assert final.global_step == STEPS and math.isfinite(final.loss)
    after = trainer.method.encoder.state_dict()
    # the gradient reached the encoder, not only a head: most of its weight tensors moved
    moved = sum(not torch.equal(before[k], after[k]) for k in before)
    assert moved >= len(before) // 2, f"{recipe.name}: {moved} of {len(before)} encoder tensors changed"

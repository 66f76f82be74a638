"""The linear probe (beats chance on digits, deterministic) and the collapse metrics (known values, warning)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from distributed_ssl.config import load_config
from distributed_ssl.engine.probe_logging import log_probe
from distributed_ssl.evaluation.collapse import collapse_report, effective_rank, embedding_std
from distributed_ssl.evaluation.labeled_set import load_labeled
from distributed_ssl.evaluation.linear_probe import holdout_split, linear_probe_features
from distributed_ssl.evaluation.probe_suite import probe_encoder, probe_features
from distributed_ssl.methods.registry import build_encoder_for

pytestmark = pytest.mark.usefixtures("one_thread")


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """Raw pixel features at the digits' native 8x8 resolution (one channel; the 3 are copies)."""
    return F.avg_pool2d(x[:, :1], 4).flatten(1)


@pytest.fixture(scope="module")
def digit_splits(digits):
    cfg = load_config(None, ["model.encoder=vit_debug"])
    return cfg, load_labeled(str(digits), cfg)


def test_linear_probe_beats_chance_on_pixels_and_random_encoder_and_is_deterministic(digit_splits):
    cfg, splits = digit_splits
    pixels = probe_encoder(_pixels, splits, cfg.eval)
    assert pixels.linear_top1 > 0.85  # chance is 0.1
    torch.manual_seed(0)
    encoder = build_encoder_for(cfg).eval()
    first = probe_encoder(encoder.embed, splits, cfg.eval)
    again = probe_encoder(encoder.embed, splits, cfg.eval)
    assert first.linear_top1 > 0.5 and first.linear_top1 == again.linear_top1
    assert first.metrics() == again.metrics()


def test_linear_probe_on_one_split_uses_a_stratified_seeded_holdout(digit_splits):
    cfg, splits = digit_splits
    feats, labels = _pixels(splits["train"].inputs), splits["train"].labels
    train_idx, val_idx = holdout_split(labels, 0.2)
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist()) and len(train_idx) + len(val_idx) == len(labels)
    assert set(labels[val_idx].tolist()) == set(range(10))
    one = linear_probe_features({"all": feats}, {"all": labels}, 10)
    assert one > 0.85 and one == linear_probe_features({"all": feats}, {"all": labels}, 10)
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    assert linear_probe_features({"all": feats}, {"all": shuffled}, 10) < 0.3  # nothing to learn: near chance


def test_collapse_metrics_of_constant_rank1_and_isotropic_embeddings():
    g = torch.Generator().manual_seed(0)
    dim = 32
    constant = torch.ones(500, dim) * 3.0
    assert embedding_std(constant) == pytest.approx(0.0, abs=1e-9)
    assert effective_rank(constant) == pytest.approx(1.0)
    rank1 = torch.randn(500, 1, generator=g) * torch.randn(1, dim, generator=g)
    assert effective_rank(rank1) == pytest.approx(1.0, abs=1e-3)
    gauss = torch.randn(20000, dim, generator=g)
    assert embedding_std(gauss) == pytest.approx(1 / math.sqrt(dim), rel=0.02)
    assert effective_rank(gauss) > 0.95 * dim
    two_dims = torch.randn(1000, 2, generator=g) @ torch.randn(2, dim, generator=g)
    assert 1.2 < effective_rank(two_dims) <= 2.0 + 1e-6

    assert collapse_report(gauss).collapsed is False and collapse_report(gauss).reason == ""
    for collapsed in (constant, rank1, constant + 1e-6 * torch.randn(500, dim, generator=g)):
        report = collapse_report(collapsed)
        assert report.collapsed and ("effective rank" in report.reason or "embedding std" in report.reason)
    assert collapse_report(constant).metrics()["collapsed"] == 1.0


def test_a_healthy_encoder_with_a_shared_offset_and_few_directions_is_not_called_collapsed():
    """What the trained LiDAR encoders look like: four classes spread over six directions, the spread 0.57 % of a
    shared offset. The probes standardise and read the classes; the monitor must not warn, while the same offset
    with a spread of 1e-6 (every input on one point) still warns."""
    g = torch.Generator().manual_seed(0)
    dim, per_class = 128, 100
    offset = torch.randn(dim, generator=g) * 5.0
    directions = torch.randn(6, dim, generator=g)
    centres = torch.randn(4, 6, generator=g) * 2.0
    labels = torch.arange(4).repeat_interleave(per_class)
    spread = (centres[labels] + 0.5 * torch.randn(len(labels), 6, generator=g)) @ directions
    unit = offset.norm() / spread.norm(dim=1).mean()  # the spread at 1 x the offset's norm
    healthy, one_point = (offset + spread * scale * unit for scale in (0.0057, 1e-6))
    assert collapse_report(healthy).collapsed is False, collapse_report(healthy)
    assert collapse_report(one_point).collapsed is True, collapse_report(one_point)
    assert embedding_std(healthy) * math.sqrt(dim) < 0.01  # what the former limit (0.01) called collapse
    train, val = torch.arange(len(labels)) % 2 == 0, torch.arange(len(labels)) % 2 == 1
    assert linear_probe_features({"train": healthy[train], "val": healthy[val]},
                                 {"train": labels[train], "val": labels[val]}, 4) > 0.9


def test_collapse_warning_goes_to_the_log_and_an_mlflow_tag(digit_splits, caplog):
    from mlflow.tracking import MlflowClient

    from distributed_ssl.tracking.mlflow_tracking import RunLogger, create_run
    from tests.conftest import TRACKING_DB

    cfg, splits = digit_splits
    uri = f"sqlite:///{TRACKING_DB}"
    run_id = create_run(uri, "test-collapse-warning", str(TRACKING_DB.parent), "collapse", {})
    logger = RunLogger(uri, run_id)
    healthy = probe_features({k: _pixels(s.inputs) for k, s in splits.items()}, splits, cfg.eval)
    collapsed = probe_features({k: torch.ones(len(s.labels), 16) for k, s in splits.items()}, splits, cfg.eval)
    with caplog.at_level(logging.INFO, logger="distributed_ssl.train"):
        log_probe(logger, healthy, None, 1, 10)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        log_probe(logger, collapsed, healthy, 2, 20)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "epoch 2: representation collapse" in warnings[0]
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.tags["collapse_warning"].startswith("epoch 2: representation collapse")
    assert run.data.metrics["collapsed"] == 1.0 and run.data.metrics["embedding_std"] == pytest.approx(0.0)

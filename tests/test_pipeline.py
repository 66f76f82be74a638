"""The Ray Data pipeline on a real local Ray: shapes, dtypes, masks and per-epoch reshuffling."""

import numpy as np
import pytest

from distributed_ssl.config import load_config
from distributed_ssl.methods.registry import view_spec_for
from distributed_ssl.modalities.train_dataset import build_train_dataset


@pytest.mark.parametrize("method", ["simclr", "mae"])
def test_batches_have_model_ready_shapes(ray_cluster, digits, method):
    cfg = load_config(None, [f"data.train={digits / 'train'}", f"method.name={method}", "model.patch_size=4"])
    ds = build_train_dataset(cfg, view_spec_for(cfg))
    batch = ds.take_batch(16)
    assert batch["view_0"].shape == (16, 3, 32, 32) and batch["view_0"].dtype == np.float32
    assert np.isfinite(batch["view_0"]).all()
    if method == "simclr":
        assert batch["view_1"].shape == (16, 3, 32, 32)
        assert not np.allclose(batch["view_0"], batch["view_1"])
        assert "mask" not in batch
    else:
        assert batch["mask"].shape == (16, 64) and batch["mask"].dtype == bool
        assert (batch["mask"].sum(axis=1) == 48).all()


def test_each_epoch_is_reshuffled_and_reaugmented(ray_cluster, digits):
    cfg = load_config(None, [f"data.train={digits / 'train'}", "data.preprocess_batch_size=64"])
    ds = build_train_dataset(cfg, view_spec_for(cfg))
    first = next(iter(ds.iter_batches(batch_size=32, batch_format="numpy")))["view_0"]
    second = next(iter(ds.iter_batches(batch_size=32, batch_format="numpy")))["view_0"]
    assert first.shape == second.shape and not np.allclose(first, second)
    assert ds.count() == 1438

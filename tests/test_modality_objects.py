"""A modality is built once from its own config sections and travels, pickled, into the Ray Data step: it holds
no `SSLConfig`, and a copy makes the same views from the same generator seed."""

from __future__ import annotations

import functools
import io
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from distributed_ssl.config import load_config
from distributed_ssl.config.modality_configs import MODALITY_CONFIGS
from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.modalities.base import register_modality
from distributed_ssl.modalities.preprocess import make_views_batch
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.modalities.view_spec import ViewSpec

OVERRIDES = {
    "image": ["model.patch_size=8"],
    "audio": ["model.patch_size=8", "modality.n_mels=32"],
    "lidar": ["modality.num_points=128", "modality.num_groups=8", "modality.group_size=8"],
}
# global and local views, strongly augmented, with a random patch mask: every draw a modality makes
SPEC = ViewSpec(num_views=2, augment="strong", mask=True, num_local_views=2)


def _cfg(modality: str) -> SSLConfig:
    return load_config(None, [f"modality.name={modality}", "method.name=mae", "mask.ratio=0.5",
                              *OVERRIDES[modality]])


def _raw(modality: str, cfg: SSLConfig) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    if modality == "image":
        return torch.rand(3, 3, 32, 32, generator=gen)
    if modality == "audio":
        wave = torch.randn(3, 20000, generator=gen) * 0.1
        wave[1, 15000:] = float("nan")
        return wave
    return torch.randn(3, cfg.modality.num_points, 4, generator=gen)


@pytest.mark.parametrize("modality", sorted(MODALITY_CONFIGS))
def test_built_modality_holds_its_own_sections_and_pickles_to_the_same_views(modality):
    cfg = _cfg(modality)
    built = build_modality(cfg)
    assert built.name == modality
    assert built.config is cfg.modality and built.augment is cfg.augment and built.mask is cfg.mask
    if modality != "lidar":  # point patches have no patch size
        assert built.patch_size == cfg.model.patch_size
    assert not any(isinstance(v, SSLConfig) for v in vars(built).values())

    copy = pickle.loads(pickle.dumps(built))
    assert copy == built and copy is not built
    raw = _raw(modality, cfg)
    ours = built.make_views(raw, SPEC, torch.Generator().manual_seed(11))
    theirs = copy.make_views(raw, SPEC, torch.Generator().manual_seed(11))
    assert sorted(ours) == ["local_0", "local_1", "mask", "view_0", "view_1"]
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype and ours[key].tobytes() == theirs[key].tobytes(), key
    assert built.eval_inputs(raw).numpy().tobytes() == copy.eval_inputs(raw).numpy().tobytes()
    assert copy.num_patches() == built.num_patches() and copy.encoder_kwargs() == built.encoder_kwargs()


def test_the_map_batches_partial_pickles_and_decodes_the_same():
    cfg = _cfg("image")
    records = {"id": np.array([f"img-{i}" for i in range(4)], dtype=object), "image": [], "label": np.arange(4)}
    rng = np.random.default_rng(0)
    for _ in range(4):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(buf, format="PNG")
        records["image"].append(buf.getvalue())
    records["image"] = np.array(records["image"], dtype=object)
    fn = functools.partial(make_views_batch, modality=build_modality(cfg), spec=SPEC, seed=5)
    ours, theirs = fn(records), pickle.loads(pickle.dumps(fn))(records)
    assert sorted(ours) == ["label", "local_0", "local_1", "mask", "view_0", "view_1"]
    assert all(ours[k].tobytes() == theirs[k].tobytes() for k in ours)


def test_a_modality_argument_build_modality_cannot_fill_is_refused():
    with pytest.raises(TypeError, match="image_mean"):
        @register_modality("image")
        class Broken:
            def __init__(self, config, image_mean):
                pass

"""The hand-made-feature baseline (`knn_top1_raw_features`): each modality's feature against a numpy reference on
real sample records, the kNN it gives on the digits, and `dssl eval` / summary.json carrying it. No Ray."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from distributed_ssl.cli import main
from distributed_ssl.config.loader import load_config, save_config
from distributed_ssl.evaluation.knn_probe import memory_bank, standardized
from distributed_ssl.evaluation.labeled_set import LabeledSplit, load_labeled
from distributed_ssl.evaluation.raw_features import (
    audio_features,
    image_features,
    lidar_features,
    lidar_points,
    raw_feature_knn,
    raw_features,
)
from distributed_ssl.methods.registry import build_encoder_for
from distributed_ssl.modalities.point_tokenizer import tokenize

QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95]
DEBUG_ENCODER = {"image": "vit_debug", "audio": "vit_debug", "lidar": "point_debug"}


def _cfg(modality: str, data: Path | str, *extra: str):
    return load_config(None, [f"modality.name={modality}", f"model.encoder={DEBUG_ENCODER[modality]}",
                              f"data.train={data}/train", f"data.eval={data}", *extra])


@pytest.fixture(scope="module")
def image_splits(digits) -> dict[str, LabeledSplit]:
    return load_labeled(str(digits), _cfg("image", digits))


@pytest.fixture(scope="module")
def audio_splits(tmp_path_factory) -> dict[str, LabeledSplit]:
    """60 espeak-ng utterances (10 words × 6 voices; validation voices speak no training clip), as the probe loads them."""
    from distributed_ssl.data.sample_audio import write_spoken_words

    out = tmp_path_factory.mktemp("raw_audio") / "words"
    write_spoken_words(str(out), per_word=6, val_fraction=1 / 3, shard_size=64)
    return load_labeled(str(out), _cfg("audio", out))


@pytest.fixture(scope="module")
def lidar_splits(tmp_path_factory) -> dict[str, LabeledSplit]:
    """10 simulated sweeps (5 scene types × 2), as the probe loads them."""
    from distributed_ssl.data.sample_lidar import write_lidar_scenes

    out = tmp_path_factory.mktemp("raw_lidar") / "scenes"
    write_lidar_scenes(str(out), per_class=2, val_fraction=0.5, shard_size=64)
    return load_labeled(str(out), _cfg("lidar", out))


def test_image_features_are_8x8_block_means_of_the_normalised_input(image_splits, one_thread):
    x = image_splits["val"].inputs[:6]
    n, c, h, w = x.shape  # 3 × 32 × 32: blocks of 4 × 4 pixels
    bh, bw = h // 8, w // 8
    ref = np.zeros((n, c, 8, 8))
    xs = x.numpy().astype(np.float64)
    for i in range(n):
        for ch in range(c):
            for r in range(8):
                for q in range(8):
                    ref[i, ch, r, q] = xs[i, ch, r * bh:(r + 1) * bh, q * bw:(q + 1) * bw].mean()
    got = image_features(x)
    assert got.shape == (n, c * 64)
    np.testing.assert_allclose(got.numpy(), ref.reshape(n, -1), atol=1e-5)
    assert float(x.min()) < 0  # the model-ready input, normalised (not 0..255 pixels)
    assert torch.equal(raw_features("image", x), got)


def test_audio_features_are_per_band_mean_and_std_of_the_model_log_mel(audio_splits, one_thread):
    x = audio_splits["train"].inputs
    n, _, mels, frames = x.shape
    assert frames > 1 and -1.0 - 1e-5 <= float(x.min()) and float(x.max()) <= 1.0 + 1e-5  # log_mel's range
    spec = x.numpy().astype(np.float64)
    ref = np.zeros((n, 2 * mels))
    for i in range(n):
        for band in range(mels):
            row = spec[i, 0, band]
            ref[i, band] = row.sum() / frames
            ref[i, mels + band] = np.sqrt(((row - row.mean()) ** 2).sum() / frames)
    got = audio_features(x)
    assert got.shape == (n, 2 * mels)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-5)
    assert torch.equal(raw_features("audio", x), got)


def _lidar_reference(tokens: np.ndarray) -> np.ndarray:
    """Loops over every patch row: neighbour = centre + offset; then z, intensity and extent statistics."""
    rows = []
    for cloud in tokens.astype(np.float64):
        pts = []
        for group in cloud:
            for row in group[1:]:
                pts.append([row[0] + group[0, 0], row[1] + group[0, 1], row[2] + group[0, 2], row[3]])
        pts = np.array(pts)
        z, inten = pts[:, 2], pts[:, 3]
        rows.append([z.std(), *np.quantile(z, QUANTILES), inten.mean(), inten.std(), *np.quantile(inten, QUANTILES),
                     *(pts[:, :3].max(axis=0) - pts[:, :3].min(axis=0))])
    return np.array(rows)


def test_lidar_features_are_height_intensity_and_extent_statistics(lidar_splits, one_thread):
    tokens = lidar_splits["train"].inputs
    got = lidar_features(tokens)
    assert got.shape == (tokens.shape[0], 16)
    np.testing.assert_allclose(got.numpy(), _lidar_reference(tokens.numpy()), rtol=1e-4, atol=1e-5)
    assert torch.equal(raw_features("lidar", tokens), got)
    # each patch centre is its own nearest neighbour, so it is among the points recovered from its patch
    n, g, k1, _ = tokens.shape
    points = lidar_points(tokens).reshape(n, g, k1 - 1, -1)
    gap = (points[..., :3] - tokens[:, :, :1, :3]).norm(dim=-1).amin(dim=-1)
    assert float(gap.max()) < 1e-5


def test_lidar_points_are_points_of_the_cloud(one_thread):
    gen = torch.Generator().manual_seed(0)
    cloud = torch.randn(2, 200, 4, generator=gen)
    recovered = lidar_points(tokenize(cloud, num_groups=8, group_size=5))
    assert recovered.shape == (2, 40, 4)
    nearest = (recovered[:, :, None] - cloud[:, None]).norm(dim=-1).amin(dim=-1)  # every recovered point (with intensity) is in the cloud
    assert float(nearest.max()) < 1e-5


def test_features_are_standardised_with_the_bank_statistics(image_splits, one_thread):
    feats = standardized({name: image_features(s.inputs) for name, s in image_splits.items()}, memory_bank(image_splits))
    raw = {name: image_features(s.inputs) for name, s in image_splits.items()}
    mean, std = raw["train"].mean(0), raw["train"].std(0).clamp_min(1e-6)
    varying = raw["train"].std(0) > 1e-3  # the digits' blank corners are constant
    assert varying.sum() > 100
    np.testing.assert_allclose(feats["train"].mean(0).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(feats["train"].std(0)[varying].numpy(), 1.0, atol=1e-4)
    np.testing.assert_allclose(feats["val"].numpy(), ((raw["val"] - mean) / std).numpy(), atol=1e-4)


def test_unknown_modality_is_refused():
    with pytest.raises(ValueError, match="no raw-feature baseline"):
        raw_features("radar", torch.zeros(2, 3))


def test_digits_raw_features_knn_is_well_above_chance(image_splits, digits, one_thread):
    cfg = _cfg("image", digits)
    acc = raw_feature_knn("image", image_splits, cfg.eval)
    assert acc > 0.9, acc  # 10 classes, chance 0.1; measured 0.967 (train bank, val queries, k=20)
    one_split = load_labeled(str(digits / "val"), cfg)  # {"all": ...}: leave-one-out, as for the encoder
    assert list(one_split) == ["all"]
    assert raw_feature_knn("image", one_split, cfg.eval) > 0.8  # measured 0.908 on 359 records


def test_other_modalities_raw_knn_beats_chance(audio_splits, lidar_splits, tmp_path, one_thread):
    for modality, splits in (("audio", audio_splits), ("lidar", lidar_splits)):
        acc = raw_feature_knn(modality, splits, _cfg(modality, tmp_path).eval)
        chance = 1.0 / next(iter(splits.values())).num_classes
        assert acc > 2 * chance, (modality, acc)  # measured: audio 0.70 (10 words, unseen voices), LiDAR 0.92


def test_dssl_eval_reports_raw_features_knn(digits, tmp_path, capsys, one_thread):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = _cfg("image", digits, f"run.dir={run_dir}")
    save_config(cfg, run_dir / "config.yaml")
    torch.manual_seed(0)
    torch.save(build_encoder_for(cfg).state_dict(), run_dir / "encoder.pt")
    out, data = tmp_path / "eval.json", str(digits / "val")  # one split (359 records): leave-one-out, quick
    assert main(["eval", str(run_dir), "--data", data, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["knn_top1_raw_features"] == pytest.approx(raw_feature_knn("image", load_labeled(data, cfg), cfg.eval))
    assert result["knn_top1_raw_features"] > 0.8  # measured 0.908
    table = capsys.readouterr().out
    lines = [line for line in table.splitlines() if line.startswith("| knn_top1")]
    assert [line.split("|")[1].strip() for line in lines] == ["knn_top1", "knn_top1_random_init",
                                                               "knn_top1_raw_features"]


def test_summary_carries_raw_features_next_to_random_init(digits, tmp_path):
    from distributed_ssl.data.manifest import load_manifest
    from distributed_ssl.launch.summary import SUMMARY_KEYS, format_table
    from distributed_ssl.launch.trainer import _summary
    from distributed_ssl.util.run_dir import RunDir

    cfg = _cfg("image", digits, f"run.dir={tmp_path}")
    metrics = {"knn_top1": 0.8, "knn_top1_random_init": 0.6, "knn_top1_raw_features": 0.97}
    result = SimpleNamespace(metrics=metrics, checkpoint=None)
    state = SimpleNamespace(mlflow_run_id="r", tracking_uri="file:///x")
    summary = _summary(cfg, result, load_manifest(str(digits / "train")), state, RunDir(str(tmp_path)), 1.0)
    assert summary["knn_top1_raw_features"] == 0.97
    assert SUMMARY_KEYS.index("knn_top1_raw_features") == SUMMARY_KEYS.index("knn_top1_random_init") + 1
    rows = dict(tuple(cell.strip() for cell in line.split("|")[1:3]) for line in format_table(summary).splitlines()
                if line.startswith("|"))
    assert rows["knn_top1_raw_features"] == "0.9700"

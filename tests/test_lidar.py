"""LiDAR: readers and converter on real files, the simulator, FPS/kNN tokenizer, augmentations, Chamfer, methods."""

from __future__ import annotations

import laspy
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from distributed_ssl.config import load_config
from distributed_ssl.data.convert_lidar import convert_lidar_folder
from distributed_ssl.data.lidar_raycast import SpinningLidar, cast
from distributed_ssl.data.lidar_scene import BUILDING, GROUND, POINT_CLASSES, Scene
from distributed_ssl.data.manifest import DatasetError, load_manifest, shard_paths
from distributed_ssl.data.point_io import PointCloudError, read_point_cloud
from distributed_ssl.losses.chamfer_loss import MaskedChamferLoss
from distributed_ssl.methods.registry import build_method
from distributed_ssl.modalities.decode_errors import RecordDecodeError
from distributed_ssl.modalities.point_augment import random_crop, random_dropout, rotate_z, strong_points
from distributed_ssl.modalities.point_tokenizer import farthest_point_sample, knn_indices, tokenize
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.modalities.view_spec import ViewSpec

LIDAR = ["modality.name=lidar", "model.encoder=point_debug", "modality.num_points=256", "modality.num_groups=16",
         "modality.group_size=8"]


def _cloud(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(-20, 20, (n, 3)), rng.uniform(0, 1, (n, 1))], axis=1).astype(np.float32)


def _write_pcd(path, pts: np.ndarray, binary: bool) -> None:
    header = ("# .PCD v0.7\nVERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
              f"WIDTH {len(pts)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(pts)}\n"
              f"DATA {'binary' if binary else 'ascii'}\n")
    body = pts.astype("<f4").tobytes() if binary else "".join(" ".join(f"{v:.6f}" for v in p) + "\n"
                                                                for p in pts).encode()
    path.write_bytes(header.encode() + body)


def _write_las(path, n: int, extent: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.offsets = np.array([500000.0, 4000000.0, 0.0])
    header.scales = np.array([0.01, 0.01, 0.01])
    las = laspy.LasData(header)
    xyz = np.stack([500000 + rng.uniform(0, extent, n), 4000000 + rng.uniform(0, extent / 2, n),
                    rng.uniform(100, 130, n)], axis=1)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.intensity = rng.integers(0, 65535, n).astype(np.uint16)
    las.classification = rng.choice([2, 5, 6], n).astype(np.uint8)  # ground, high vegetation, building
    las.write(path)
    return xyz


def test_readers_round_trip_every_format(tmp_path):
    pts = _cloud(300)
    pts.tofile(tmp_path / "scan.bin")
    np.save(tmp_path / "scan.npy", pts[:, :3])
    _write_pcd(tmp_path / "bin.pcd", pts, binary=True)
    _write_pcd(tmp_path / "txt.pcd", pts, binary=False)
    np.testing.assert_array_equal(read_point_cloud(tmp_path / "scan.bin").points, pts)
    np.testing.assert_allclose(read_point_cloud(tmp_path / "bin.pcd").points, pts)
    np.testing.assert_allclose(read_point_cloud(tmp_path / "txt.pcd").points, pts, atol=1e-5)
    npy = read_point_cloud(tmp_path / "scan.npy").points
    np.testing.assert_array_equal(npy[:, :3], pts[:, :3])
    assert (npy[:, 3] == 0).all()
    for suffix in ("las", "laz"):
        xyz = _write_las(tmp_path / f"tile.{suffix}", 500, 40.0, seed=1)
        cloud = read_point_cloud(tmp_path / f"tile.{suffix}")
        # shifted to the file's corner so float32 keeps centimetres; shape of the cloud unchanged
        np.testing.assert_allclose(cloud.points[:, :3] - cloud.points[:, :3].min(0), xyz - xyz.min(0), atol=0.011)
        assert cloud.points[:, :3].max() < 200 and 0 <= cloud.points[:, 3].min() and cloud.points[:, 3].max() <= 1
        assert set(np.unique(cloud.point_labels)) == {2, 5, 6}
    (tmp_path / "short.bin").write_bytes(b"\0" * 10)
    with pytest.raises(PointCloudError, match="short.bin"):
        read_point_cloud(tmp_path / "short.bin")


def test_convert_folder_tiles_aerial_files_and_labels_subfolders(tmp_path):
    src = tmp_path / "src"
    (src / "city").mkdir(parents=True)
    (src / "rural").mkdir()
    for i in range(2):
        _cloud(400, i).tofile(src / "city" / f"{i:06d}.bin")
        _write_pcd(src / "city" / f"scan{i}.pcd", _cloud(400, 10 + i), binary=True)
    _write_las(src / "rural" / "a.laz", 20000, 200.0, seed=2)  # 200 m × 100 m → 4 × 2 tiles of 50 m
    _write_las(src / "rural" / "b.las", 20000, 200.0, seed=3)
    _cloud(50).tofile(src / "rural" / "tiny.bin")  # under min_points: skipped and reported

    report = convert_lidar_folder(src, str(tmp_path / "out"), tile_size=50.0, min_points=256, val_fraction=0.0)
    assert [(s.path, s.category) for s in report.skipped] == [(str(src / "rural" / "tiny.bin"), "too_few_points")]
    m = load_manifest(str(tmp_path / "out/train"))
    assert m.classes == ["city", "rural"] and m.num_records == 4 + 2 * 8
    rows = pq.read_table(shard_paths(str(tmp_path / "out/train"))[0]).to_pylist()
    tiles = [r for r in rows if "#tile_" in r["id"]]
    assert len(tiles) == 16 and all(r["label"] == 1 and r["num_points"] >= 256 for r in tiles)
    for r in tiles:
        pts = np.frombuffer(r["points"], "<f4").reshape(-1, 4)
        extent = pts[:, :2].max(0) - pts[:, :2].min(0)
        assert len(pts) == r["num_points"] and (extent <= 50.0 + 1e-3).all()
        assert len(r["point_labels"]) == r["num_points"]
    assert sum(r["num_points"] for r in tiles) == 40000  # every point lands in exactly one tile
    with pytest.raises(DatasetError, match="tiny.bin"):
        convert_lidar_folder(src, str(tmp_path / "out2"), on_bad="fail")


def test_simulated_sweep_hits_a_wall_where_it_stands():
    scene = Scene()
    scene.box(12.0, 0.0, 2.0, 40.0, 10.0, 0.0, BUILDING)  # wall face at x = 11
    lidar = SpinningLidar(beams=8, azimuth_steps=360, range_noise=0.0)
    points, labels = cast(scene, lidar, np.random.default_rng(0))
    wall = points[labels == BUILDING]
    assert len(wall) > 100 and np.allclose(wall[:, 0], 11.0, atol=1e-4)
    ground = points[labels == GROUND]
    assert np.allclose(ground[:, 2], 0.0, atol=1e-4) and (ground[:, 0] < 11.0 + 1e-4).all()  # shadowed behind
    assert np.linalg.norm(points[:, :3] - [0, 0, lidar.height], axis=1).max() < lidar.max_range
    assert 0 <= points[:, 3].min() and points[:, 3].max() <= 1


def test_reflectivity_spread_gives_each_wall_its_own_intensity():
    """Two walls of one class facing the sensor at the same range: one reflectivity without the spread (same
    intensity), each its own with it (intensity no longer names the class)."""
    scene = Scene()
    scene.box(12.0, 0.0, 2.0, 10.0, 10.0, 0.0, BUILDING)  # faces at x = +11 and x = -11
    scene.box(-12.0, 0.0, 2.0, 10.0, 10.0, 0.0, BUILDING)
    gaps = {}
    for spread in (0.0, 0.5):
        lidar = SpinningLidar(beams=8, azimuth_steps=720, range_noise=0.0, reflectivity_spread=spread)
        points, labels = cast(scene, lidar, np.random.default_rng(3))
        wall = points[labels == BUILDING]
        front, back = wall[wall[:, 0] > 0, 3].mean(), wall[wall[:, 0] < 0, 3].mean()
        gaps[spread] = abs(np.log(front / back))
    assert gaps[0.0] < 0.02 and gaps[0.5] > 0.1, gaps


def test_sample_scenes_are_labeled(tmp_path):
    from distributed_ssl.data.sample_lidar import write_lidar_scenes

    manifests = write_lidar_scenes(str(tmp_path / "scenes"), per_class=2, lidar=SpinningLidar(azimuth_steps=180))
    assert manifests["train"].num_records + manifests["val"].num_records == 10
    assert manifests["val"].num_records == 5  # one of each scene type
    rows = pq.read_table(shard_paths(str(tmp_path / "scenes/train"))[0]).to_pylist()
    for r in rows:
        labels = np.frombuffer(r["point_labels"], np.uint8)
        assert len(labels) == r["num_points"] > 500 and labels.max() < len(POINT_CLASSES)
        assert (labels == GROUND).any()


def test_chamfer_matches_brute_force():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 5 * 3), torch.randn(2, 3, 5 * 3)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    total, count = 0.0, 0
    for b in range(2):
        for g in range(3):
            if not mask[b, g]:
                continue
            p, t = pred[b, g].view(5, 3).tolist(), target[b, g].view(5, 3).tolist()
            sq = lambda u, v: sum((x - y) ** 2 for x, y in zip(u, v, strict=True))  # noqa: E731
            total += sum(min(sq(u, v) for v in t) for u in p) / 5 + sum(min(sq(v, u) for u in p) for v in t) / 5
            count += 1
    assert abs(float(MaskedChamferLoss()(pred, target, mask)) - total / count) < 1e-5
    shuffled = target.view(2, 3, 5, 3)[:, :, torch.randperm(5)].reshape(2, 3, 15)
    assert float(MaskedChamferLoss()(shuffled, target, mask)) < 1e-10  # order within a patch does not matter


def test_fps_picks_distinct_points_that_cover_the_cloud():
    torch.manual_seed(0)
    xyz = torch.randn(3, 500, 3)
    idx = farthest_point_sample(xyz, 32, torch.Generator().manual_seed(1))
    for b in range(3):
        assert len(set(idx[b].tolist())) == 32
        centres = xyz[b, idx[b]]
        cover = torch.cdist(xyz[b], centres).min(dim=1).values.max()  # farthest any point is from a centre
        separation = torch.pdist(centres).min()
        assert cover <= separation + 1e-6  # the greedy guarantee: no point is farther than centres are apart
    # eight tight, far-apart clusters: eight centres land one in each
    blobs = torch.randn(8, 3) * 50
    cloud = (blobs[:, None, :] + 0.1 * torch.randn(8, 40, 3)).reshape(1, -1, 3)
    picked = farthest_point_sample(cloud, 8)
    assert sorted((picked[0] // 40).tolist()) == list(range(8))


def test_knn_groups_match_brute_force_and_tokens_are_centred():
    torch.manual_seed(0)
    points = torch.rand(2, 200, 4)
    idx = knn_indices(points[..., :3], points[:, :5, :3], 6)
    for b in range(2):
        for c in range(5):
            d = ((points[b, :, :3] - points[b, c, :3]) ** 2).sum(-1)
            assert set(idx[b, c].tolist()) == set(d.argsort()[:6].tolist())
    tokens = tokenize(points, num_groups=10, group_size=6)
    assert tokens.shape == (2, 10, 7, 4)
    assert torch.allclose(tokens[:, :, 1, :3], torch.zeros(2, 10, 3))  # each centre is its own nearest neighbour
    assert torch.equal(tokens[:, :, 1, 3], tokens[:, :, 0, 3])  # intensity carried as it is


def test_augmentations_keep_shapes_and_geometry():
    gen = torch.Generator().manual_seed(0)
    points = torch.rand(4, 300, 4) - 0.5
    rotated = rotate_z(points, 180.0, gen)
    assert torch.allclose(rotated[..., :2].norm(dim=-1), points[..., :2].norm(dim=-1), atol=1e-6)
    assert torch.equal(rotated[..., 2:], points[..., 2:])
    cropped = random_crop(points, 0.3, gen)
    assert cropped.shape == points.shape and torch.allclose(cropped[..., :3].mean(1), torch.zeros(4, 3), atol=1e-5)
    dropped = random_dropout(points, 0.5, gen)
    for b in range(4):  # every resampled point is one of the originals
        assert (dropped[b][:, None, :] == points[b][None, :, :]).all(-1).any(1).all()
    cfg = load_config(None, LIDAR)
    assert strong_points(points, cfg.augment, gen).shape == points.shape


def _records(n=3, counts=(100, 400, 1000)):
    rows = {"id": [], "points": [], "num_points": []}
    for i in range(n):
        rows["id"].append(f"scan-{i}")
        rows["points"].append(_cloud(counts[i], i).tobytes())
        rows["num_points"].append(counts[i])
    return {k: np.array(v, dtype=object) for k, v in rows.items()}


@pytest.mark.parametrize("augment,mask", [("strong", False), ("light", True), ("none", False)])
def test_lidar_views_match_the_encoder(augment, mask):
    cfg = load_config(None, LIDAR + (["method.name=mae"] if mask else []))  # a masking method has mask keys
    modality = build_modality(cfg)
    raw = modality.decode(_records())
    assert raw.shape == (3, 256, 4) and torch.equal(raw, modality.decode(_records()))  # deterministic
    assert torch.allclose(raw[..., :3].mean(1), torch.zeros(3, 3), atol=1e-5)
    views = modality.make_views(raw, ViewSpec(2, augment, mask), torch.Generator().manual_seed(0))
    assert views["view_0"].shape == views["view_1"].shape == (3, 16, 9, 4)
    if mask:
        assert views["mask"].shape == (3, 16) and views["mask"].sum(1).tolist() == [12, 12, 12]
    encoder = build_method(cfg).encoder
    assert encoder.embed(torch.from_numpy(views["view_0"])).shape == (3, encoder.dim)
    assert modality.eval_inputs(raw).shape == (3, 16, 9, 4)


def test_height_bands_pool_patches_by_the_height_of_their_centre():
    """`modality.pooling=height_bands`: the patches ranked by centre height, quartered, one mean per quarter (lowest
    first); the embedding does not depend on the order the patches come in, and too few patches are refused."""
    cfg = load_config(None, LIDAR + ["modality.pooling=height_bands", "method.name=dino"])
    modality = build_modality(cfg)
    tokens = modality.eval_inputs(modality.decode(_records()))  # [3, 16, 9, 4]
    encoder = build_method(cfg).encoder.eval()
    width = encoder.dim
    assert encoder.embed_dim == 4 * width
    with torch.no_grad():
        patches, embedding = encoder(tokens)[:, 1:], encoder.embed(tokens)
        shuffled = encoder.embed(tokens[:, torch.randperm(16, generator=torch.Generator().manual_seed(0))])
    assert embedding.shape == (3, 4 * width)
    for b in range(3):
        lowest_first = tokens[b, :, 0, 2].argsort()
        for band in range(4):
            expected = patches[b, lowest_first[4 * band:4 * (band + 1)]].mean(dim=0)
            torch.testing.assert_close(embedding[b, band * width:(band + 1) * width], expected)
    torch.testing.assert_close(shuffled, embedding, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="4 height bands need at least as many point patches; this input has 3"):
        encoder.embed(tokens[:, :3])


def test_inconsistent_record_names_the_record():
    records = _records()
    records["num_points"][1] = 401
    with pytest.raises(RecordDecodeError, match="scan-1"):
        build_modality(load_config(None, LIDAR)).decode(records)


@pytest.mark.parametrize("method", ["simclr", "mae"])
def test_methods_train_every_parameter_on_point_patches(method):
    torch.manual_seed(0)
    cfg = load_config(None, LIDAR + [f"method.name={method}"])
    m = build_method(cfg)
    tokens = tokenize(torch.rand(4, 256, 4), 16, 8)
    mask = torch.zeros(4, 16, dtype=torch.bool)
    mask[:, ::2] = True
    out = m({"view_0": tokens, "view_1": tokens + 0.01, "mask": mask})
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and not [n for n, p in m.named_parameters() if p.grad is None]

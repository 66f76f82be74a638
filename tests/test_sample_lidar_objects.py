"""The LiDAR object set: balanced classes, every tile around an object of its label, train and val from disjoint
scenes, the same set for the same seed."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from distributed_ssl.data.lidar_scene import POINT_CLASSES
from distributed_ssl.data.manifest import load_manifest
from distributed_ssl.data.sample_lidar_objects import MIN_OBJECT_POINTS, TILE_RADIUS, write_lidar_objects
from distributed_ssl.data.shard_reader import read_shards


def _rows(split_uri: str) -> list[dict]:
    return [row for t in read_shards(split_uri, load_manifest(split_uri)) for row in t.to_pylist()]


@pytest.mark.parametrize("val_fraction", [0.2, 0.25])  # the CLI's default and the function's
def test_tiles_are_balanced_labelled_by_their_object_and_split_by_scene(tmp_path, val_fraction):
    manifests = write_lidar_objects(str(tmp_path / "objects"), per_class=8, val_fraction=val_fraction)
    rows = {split: _rows(str(tmp_path / "objects" / split)) for split in manifests}
    classes = manifests["train"].classes
    assert classes == ["car", "tree", "pole", "bush"] and manifests["val"].classes == classes
    assert collections.Counter(r["label"] for r in rows["train"]) == dict.fromkeys(range(4), 6)
    assert collections.Counter(r["label"] for r in rows["val"]) == dict.fromkeys(range(4), 2)
    scenes = {split: {r["source"].rsplit(" ", 1)[1] for r in split_rows} for split, split_rows in rows.items()}
    assert scenes["train"] and scenes["val"] and not scenes["train"] & scenes["val"]
    for row in rows["train"] + rows["val"]:
        points = np.frombuffer(row["points"], dtype="<f4").reshape(-1, 4)
        point_cls = np.frombuffer(row["point_labels"], dtype=np.uint8)
        assert len(points) == row["num_points"] == len(point_cls)
        label = POINT_CLASSES.index(classes[row["label"]])
        assert int((point_cls == label).sum()) >= MIN_OBJECT_POINTS  # the centre object is seen
        assert row["id"].startswith(classes[row["label"]] + "-")
        # a tile is a circle of ground of TILE_RADIUS: no two of its points further apart than its diameter
        assert float(np.ptp(points[:, 0])) <= 2 * TILE_RADIUS + 0.1 and float(np.ptp(points[:, 1])) <= 2 * TILE_RADIUS + 0.1


def test_the_set_is_the_same_for_the_same_seed(tmp_path):
    for name in ("a", "b"):
        write_lidar_objects(str(tmp_path / name), per_class=4, seed=3)
    for split in ("train", "val"):
        assert _rows(str(tmp_path / "a" / split)) == _rows(str(tmp_path / "b" / split))


def test_the_cli_writes_the_set_of_the_function_objects_with_their_own_reflectivity(tmp_path):
    """`dssl data sample lidar --set objects` writes what write_lidar_objects writes by default, whose sensor gives
    every object its own reflectivity (tests/test_lidar.py shows what the spread does)."""
    from distributed_ssl.cli import main as dssl

    write_lidar_objects(str(tmp_path / "function"), per_class=4, val_fraction=0.25, seed=0)
    assert dssl(["data", "sample", "lidar", str(tmp_path / "cli"), "--set", "objects", "--per-class", "4",
                 "--val-fraction", "0.25"]) == 0
    for split in ("train", "val"):
        assert _rows(str(tmp_path / "cli" / split)) == _rows(str(tmp_path / "function" / split))

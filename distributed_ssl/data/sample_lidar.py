"""Built-in labeled LiDAR set: simulated spinning-LiDAR sweeps over procedurally generated outdoor scenes.

The scene type (street, parking, forest, suburb, field) is the record label; every point also carries its object
class (`lidar_scene.POINT_CLASSES`). Nothing is downloaded; the set is the same for the same seed.
"""

from __future__ import annotations

import numpy as np

from distributed_ssl.data.convert_lidar import lidar_record
from distributed_ssl.data.lidar_raycast import SpinningLidar, cast
from distributed_ssl.data.lidar_scene import SCENE_TYPES
from distributed_ssl.data.manifest import Manifest
from distributed_ssl.data.point_io import PointCloud
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.data.splits import assign_splits
from distributed_ssl.data.write_order import mixed_order


def write_lidar_scenes(out_uri: str, per_class: int = 60, lidar: SpinningLidar | None = None,
                       val_fraction: float = 0.2, shard_size: int = 256, seed: int = 0) -> dict[str, Manifest]:
    """Write `out_uri/train` and `out_uri/val`: `per_class` sweeps of each scene type.

    Every record is a sweep of its own scene (its own random layout), so no scene is on both sides of the split.
    """
    lidar = lidar or SpinningLidar()
    classes = list(SCENE_TYPES)
    labels = [c for c in range(len(classes)) for _ in range(per_class)]
    is_val = assign_splits(labels, val_fraction, seed)
    writers = {s: ShardWriter(f"{out_uri.rstrip('/')}/{s}", "lidar", shard_size, classes) for s in ("train", "val")}
    for i in mixed_order(len(labels), seed):  # classes mixed in every shard
        label = labels[i]
        rng = np.random.default_rng([seed, i])  # one stream per record: the same scene whatever the order
        scene = SCENE_TYPES[classes[label]](rng)
        points, point_labels = cast(scene, lidar, rng)
        record = lidar_record(f"{classes[label]}-{i:05d}", PointCloud(points, point_labels), label,
                              f"simulated {lidar.beams}-beam sweep, seed {seed}, scene {i}")
        writers["val" if is_val[i] else "train"].add(record)
    return {s: w.close() for s, w in writers.items()}

"""Built-in LiDAR object set: ground tiles around single objects cut from simulated sweeps, split by scene.

The scene-type set (`sample_lidar.py`) is easy: a random encoder tells a forest from a car park. Here each record
is what a sweep saw inside a small circle of ground around one object (car, tree, pole or bush): a partial view
from wherever the sensor stood, near or far, with the ground, and the neighbours that stand in the circle. The
label is the centre object's class. Every object of a scene goes to the same side of the split, and no scene is
on both sides, as a real set is split by survey region.
"""

from __future__ import annotations

import numpy as np

from distributed_ssl.data.convert_lidar import lidar_record
from distributed_ssl.data.lidar_raycast import SpinningLidar, cast
from distributed_ssl.data.lidar_scene import BUSH, CAR, POINT_CLASSES, POLE, SCENE_TYPES, TREE
from distributed_ssl.data.manifest import Manifest
from distributed_ssl.data.point_io import PointCloud
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.data.write_order import mixed_order

OBJECT_CLASSES = [CAR, TREE, POLE, BUSH]
TILE_RADIUS = 3.0  # metres of ground around the object's centre
NEAREST, FARTHEST = 3.0, 30.0  # metres from the sensor to the object's centre
MIN_OBJECT_POINTS = 24  # returns on the object itself; fewer is a glimpse no one could label
# every car body, trunk, crown, pole and scene ground its own reflectivity (log-normal around its class's): real
# returns differ by paint, bark and material, so intensity is a cue to the class, not its name
REFLECTIVITY_SPREAD = 0.5


def object_tiles(points: np.ndarray, point_cls: np.ndarray, objects: list[tuple[int, float, float]]
                 ) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(class, points, point classes) of every object in range whose tile holds enough returns of its class."""
    tiles = []
    for cls, cx, cy in objects:
        if not NEAREST <= float(np.hypot(cx, cy)) <= FARTHEST:
            continue
        inside = np.hypot(points[:, 0] - cx, points[:, 1] - cy) <= TILE_RADIUS
        if int((point_cls[inside] == cls).sum()) >= MIN_OBJECT_POINTS:
            tiles.append((cls, points[inside], point_cls[inside]))
    return tiles


def write_lidar_objects(out_uri: str, per_class: int = 150, lidar: SpinningLidar | None = None,
                        val_fraction: float = 0.25, shard_size: int = 512, seed: int = 0) -> dict[str, Manifest]:
    """Write `out_uri/train` and `out_uri/val`: about `per_class` tiles of each object class in all.

    Scenes of every type are simulated in turn; each scene is drawn to val with probability `val_fraction`
    (independently of its type), and its tiles fill that side's share of each class.
    """
    lidar = lidar or SpinningLidar(reflectivity_spread=REFLECTIVITY_SPREAD)
    names = [POINT_CLASSES[c] for c in OBJECT_CLASSES]
    want = {"val": max(1, round(per_class * val_fraction))}
    want["train"] = per_class - want["val"]
    kept: dict[str, list[dict]] = {"train": [], "val": []}
    count = {split: dict.fromkeys(OBJECT_CLASSES, 0) for split in kept}
    scene_types = list(SCENE_TYPES)
    scene = 0
    while any(n < want[split] for split in kept for n in count[split].values()):
        if scene > 50 * per_class:
            raise RuntimeError(f"{scene} simulated scenes gave too few objects for {per_class} per class "
                               f"(val_fraction {val_fraction}): {count}")
        split = "val" if np.random.default_rng([seed, scene, 1]).random() < val_fraction else "train"
        rng = np.random.default_rng([seed, scene])  # one stream per scene: the same set whatever the order
        kind = scene_types[scene % len(scene_types)]
        layout = SCENE_TYPES[kind](rng)
        points, point_cls = cast(layout, lidar, rng)
        for k, (cls, tile, tile_cls) in enumerate(object_tiles(points, point_cls, layout.objects)):
            if count[split][cls] < want[split]:
                count[split][cls] += 1
                kept[split].append({"id": f"{POINT_CLASSES[cls]}-{scene:05d}-{k:03d}", "cloud": PointCloud(
                    tile, tile_cls), "label": OBJECT_CLASSES.index(cls),
                    "source": f"simulated {lidar.beams}-beam sweep, seed {seed}, {kind} scene {scene}"})
        scene += 1
    manifests = {}
    for split, records in kept.items():
        writer = ShardWriter(f"{out_uri.rstrip('/')}/{split}", "lidar", shard_size, names)
        for i in mixed_order(len(records), seed):  # classes mixed in every shard
            r = records[i]
            writer.add(lidar_record(r["id"], r["cloud"], r["label"], r["source"]))
        manifests[split] = writer.close()
    return manifests

"""Convert a folder of point cloud files into LiDAR shards; aerial LAS/LAZ tiles are cut into ground tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from distributed_ssl.data.convert_image import ConvertReport
from distributed_ssl.data.labeled_files import find_labeled_files
from distributed_ssl.data.manifest import DatasetError
from distributed_ssl.data.point_io import (
    AERIAL_SUFFIXES,
    POINT_SUFFIXES,
    PointCloud,
    PointCloudError,
    read_point_cloud,
)
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.data.splits import assign_splits


def ground_tiles(cloud: PointCloud, tile_size: float, min_points: int) -> list[tuple[str, PointCloud]]:
    """Cut a cloud into `tile_size` × `tile_size` metre squares on the ground plane (x, y).

    Tiles with fewer than `min_points` points (edges, water, gaps) are dropped. Each tile is named by its
    grid cell, so ids stay stable when the converter is run again.
    """
    pts = cloud.points
    cell = np.floor((pts[:, :2] - pts[:, :2].min(axis=0)) / tile_size).astype(np.int64)
    key = cell[:, 0] * (int(cell[:, 1].max()) + 1) + cell[:, 1]
    order = np.argsort(key, kind="stable")
    _, starts, counts = np.unique(key[order], return_index=True, return_counts=True)
    tiles = []
    for start, count in zip(starts, counts, strict=True):
        if count < min_points:
            continue
        idx = order[start:start + count]
        ix, iy = cell[idx[0]]
        labels = None if cloud.point_labels is None else cloud.point_labels[idx]
        tiles.append((f"tile_{ix}_{iy}", PointCloud(pts[idx], labels)))
    return tiles


def lidar_record(rid: str, cloud: PointCloud, label: int | None, source: str) -> dict:
    """One shard row: points as little-endian float32 bytes, per-point classes as uint8 bytes."""
    return {"id": rid, "points": np.ascontiguousarray(cloud.points, dtype="<f4").tobytes(),
            "num_points": len(cloud.points),
            "point_labels": None if cloud.point_labels is None else cloud.point_labels.astype(np.uint8).tobytes(),
            "label": label, "source": source}


def convert_lidar_folder(src: str | Path, out_uri: str, tile_size: float = 50.0, min_points: int = 256,
                         shard_size: int = 256, val_fraction: float = 0.1, on_bad: str = "skip",
                         seed: int = 0) -> ConvertReport:
    """Write `out/train` (and `out/val`). Scans (.bin, .npy, .pcd) become one record each; aerial tiles
    (.las, .laz) become one record per ground tile when `tile_size` > 0. Clouds or tiles under
    `min_points` points are skipped."""
    src = Path(src).expanduser()
    files, classes, labels = find_labeled_files(src, POINT_SUFFIXES)
    is_val = assign_splits(labels, val_fraction, seed)  # by file, so tiles of one survey never straddle splits
    splits = ["train", "val"] if val_fraction > 0 else ["train"]
    writers = {s: ShardWriter(f"{out_uri.rstrip('/')}/{s}", "lidar", shard_size, classes) for s in splits}
    bad: list[tuple[str, str]] = []
    for i, path in enumerate(tqdm(files, desc=f"converting {src}", unit="file")):
        rel = path.relative_to(src).as_posix()
        try:
            cloud = read_point_cloud(path)
            if tile_size > 0 and path.suffix.lower() in AERIAL_SUFFIXES:
                parts = [(f"{rel}#{name}", tile) for name, tile in ground_tiles(cloud, tile_size, min_points)]
                if not parts:
                    raise PointCloudError(f"{path}: no {tile_size} m tile holds {min_points} points")
            elif len(cloud.points) < min_points:
                raise PointCloudError(f"{path}: {len(cloud.points)} points, fewer than min_points={min_points}")
            else:
                parts = [(rel, cloud)]
        except PointCloudError as exc:
            if on_bad == "fail":
                raise DatasetError(str(exc)) from exc
            bad.append((str(path), str(exc)))
            continue
        for rid, part in parts:
            writers["val" if is_val[i] else "train"].add(lidar_record(rid, part, labels[i], str(path)))
    return ConvertReport({s: w.close() for s, w in writers.items()}, bad)

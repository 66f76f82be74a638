"""Convert a folder of point cloud files into LiDAR shards; aerial LAS/LAZ tiles are cut into ground tiles."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from distributed_ssl.data.convert_report import ConvertReport, FileSkipped, SkippedFile, skip_or_fail
from distributed_ssl.data.labeled_files import DEFAULT_MAX_FILE_MB, check_file_size, find_labeled_files
from distributed_ssl.data.manifest import Manifest
from distributed_ssl.data.point_io import (
    AERIAL_SUFFIXES,
    POINT_SUFFIXES,
    PointCloud,
    PointCloudError,
    read_point_cloud,
)
from distributed_ssl.data.shard_sources import (
    ConvertOptions,
    SampleOptions,
    ShardSource,
    register_shard_source,
)
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.data.splits import assign_splits

# A cloud whose ground extent would make more tiles than this is skipped: a corrupt coordinate (or a tiny
# --tile-size) would otherwise overflow the int64 tile keys or loop over billions of empty cells.
MAX_TILES_PER_CLOUD = 1_000_000


def ground_tiles(cloud: PointCloud, tile_size: float, min_points: int,
                 where: str = "cloud") -> list[tuple[str, PointCloud]]:
    """Cut a cloud into `tile_size` × `tile_size` metre squares on the ground plane (x, y).

    Tiles with fewer than `min_points` points (edges, water, gaps) are dropped. Each tile is named by its
    grid cell, so ids stay stable when the converter is run again. Raises FileSkipped ("too_many_tiles") when
    the extent would make more than MAX_TILES_PER_CLOUD tiles.
    """
    pts = cloud.points
    if len(pts) == 0:
        return []
    low = pts[:, :2].min(axis=0).astype(np.float64)
    extent = pts[:, :2].max(axis=0).astype(np.float64) - low  # float64: float32 extents can overflow to inf
    cells = np.floor(extent / tile_size) + 1
    if not np.isfinite(cells).all() or float(cells.prod()) > MAX_TILES_PER_CLOUD:
        raise FileSkipped(f"{where}: its extent of {extent[0]:.3g} x {extent[1]:.3g} m makes {float(cells.prod()):.3g} "
                          f"tiles of {tile_size:g} m, more than MAX_TILES_PER_CLOUD={MAX_TILES_PER_CLOUD}",
                          "too_many_tiles")
    cell = np.floor((pts[:, :2].astype(np.float64) - low) / tile_size).astype(np.int64)
    key = cell[:, 0] * int(cells[1]) + cell[:, 1]
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


def cloud_records(path: Path, rel: str, tile_size: float, min_points: int,
                  max_file_mb: float) -> list[tuple[str, PointCloud]]:
    """(record id, cloud) of one file: the whole scan, or one per ground tile of an aerial file.

    Raises PointCloudError (corrupt) or FileSkipped (too large, too few points, too many tiles).
    """
    check_file_size(path, max_file_mb)
    cloud = read_point_cloud(path)
    if len(cloud.points) < min_points:
        raise FileSkipped(f"{path}: {len(cloud.points)} points, fewer than --min-points {min_points}",
                          "too_few_points")
    if tile_size > 0 and path.suffix.lower() in AERIAL_SUFFIXES:
        parts = [(f"{rel}#{name}", tile) for name, tile in ground_tiles(cloud, tile_size, min_points, str(path))]
        if not parts:
            raise FileSkipped(f"{path}: no {tile_size:g} m tile holds --min-points {min_points} points "
                              f"({len(cloud.points)} points in all)", "too_few_points")
        return parts
    return [(rel, cloud)]


def convert_lidar_folder(src: str | Path, out_uri: str, tile_size: float = 50.0, min_points: int = 256,
                         shard_size: int = 256, val_fraction: float = 0.1, on_bad: str = "skip",
                         seed: int = 0, max_file_mb: float = DEFAULT_MAX_FILE_MB) -> ConvertReport:
    """Write `out/train` (and `out/val`). Scans (.bin, .npy, .pcd) become one record each; aerial tiles
    (.las, .laz) become one record per ground tile when `tile_size` > 0. Clouds or tiles under
    `min_points` points are skipped, and so are files over `max_file_mb`."""
    src = Path(src).expanduser()
    found = find_labeled_files(src, POINT_SUFFIXES, seed)
    is_val = assign_splits(found.labels, val_fraction, seed)  # by file, so tiles of one survey never straddle splits
    splits = ["train", "val"] if val_fraction > 0 else ["train"]
    writers = {s: ShardWriter(f"{out_uri.rstrip('/')}/{s}", "lidar", shard_size, found.classes) for s in splits}
    skipped: list[SkippedFile] = list(found.outside)
    for i, path in enumerate(tqdm(found.files, desc=f"converting {src}", unit="file")):
        try:
            parts = cloud_records(path, path.relative_to(src).as_posix(), tile_size, min_points, max_file_mb)
        except FileSkipped as exc:
            skip_or_fail(skipped, str(path), exc, exc.category, on_bad)
            continue
        except PointCloudError as exc:
            skip_or_fail(skipped, str(path), exc, "corrupt", on_bad)
            continue
        for rid, part in parts:
            writers["val" if is_val[i] else "train"].add(lidar_record(rid, part, found.labels[i], str(path)))
    return ConvertReport({s: w.close() for s, w in writers.items()}, skipped)


def _convert(src: str, out: str, o: ConvertOptions) -> ConvertReport:
    return convert_lidar_folder(src, out, o.tile_size, o.min_points, o.shard_size or 128, o.val_fraction, o.on_bad,
                                max_file_mb=o.max_file_mb)


def _write_sample(out: str, o: SampleOptions) -> dict[str, Manifest]:
    from distributed_ssl.data.lidar_raycast import SpinningLidar
    from distributed_ssl.data.sample_lidar import write_lidar_scenes

    lidar = SpinningLidar(beams=o.beams, range_noise=o.range_noise)  # records are ~100 kB each: smaller shards
    if o.set == "objects":
        from distributed_ssl.data.sample_lidar_objects import REFLECTIVITY_SPREAD, write_lidar_objects

        return write_lidar_objects(out, per_class=o.per_class or 150,
                                   lidar=replace(lidar, reflectivity_spread=REFLECTIVITY_SPREAD),
                                   val_fraction=o.val_fraction, shard_size=o.shard_size or 512)
    return write_lidar_scenes(out, per_class=o.per_class or 60, lidar=lidar, val_fraction=o.val_fraction,
                              shard_size=o.shard_size or 128)


register_shard_source(ShardSource("lidar", files="KITTI .bin, .npy, .pcd, .las/.laz",
                                  sample="simulated spinning-LiDAR sweeps of procedural scenes (--set objects: "
                                  "ground tiles around single cars, trees, poles and bushes, train and val from "
                                  "disjoint scenes)", convert=_convert, write_sample=_write_sample, sets=("objects",)))

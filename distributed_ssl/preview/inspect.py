"""`dssl data inspect`: what a shard folder holds, as text and as a preview picture."""

from __future__ import annotations

import pyarrow.parquet as pq
from pyarrow.fs import FileSystem

from distributed_ssl.data.manifest import DatasetError, load_manifest, shard_paths
from distributed_ssl.data.schemas import check_schema
from distributed_ssl.data.shard_reader import read_shard
from distributed_ssl.data.splits import split_dirs
from distributed_ssl.util import storage

# A split whose shards hold on average less than this share of its classes was written class by class.
FEW_CLASSES_SHARE = 0.5


def classes_per_shard(fs: FileSystem, paths: list[str]) -> list[int]:
    """How many distinct labels each shard holds (its label column only)."""
    return [len(set(pq.read_table(p, columns=["label"], filesystem=fs).column("label").drop_null().to_pylist()))
            for p in paths]


def class_mix_lines(counts: list[int], num_classes: int) -> list[str]:
    """The classes-per-shard line, and a warning when the shards were written class by class: the streamed local
    shuffle (data.shuffle=local) mixes only within the shards a worker reads, so its batches would hold few classes,
    and a contrastive method would take same-class records as negatives."""
    mean = sum(counts) / len(counts)
    lines = [f"  classes per shard: {mean:.1f} of {num_classes} on average (fewest {min(counts)})"]
    if len(counts) > 1 and num_classes >= 4 and mean < FEW_CLASSES_SHARE * num_classes:
        lines.append("  warning: the shards hold few classes each (written class by class?): data.shuffle=local "
                     "would draw batches of few classes. Train with data.shuffle=full, or write the shards again "
                     "with `dssl data convert`, which mixes the classes in every shard")
    return lines


def describe(uri: str) -> str:
    lines = []
    for name, path in split_dirs(uri).items():
        manifest = load_manifest(path)
        fs, _ = storage.resolve(path)
        paths = shard_paths(path, manifest)
        first = paths[0]
        schema = pq.read_schema(first, filesystem=fs)  # a footer only: no value is turned into Python
        try:
            check_schema(schema, manifest.modality, first)
        except ValueError as exc:
            raise DatasetError(str(exc)) from exc
        lines.append(f"[{name}] {path}")
        lines.append(f"  modality {manifest.modality}, schema v{manifest.schema_version}, "
                     f"{manifest.num_records} records in {len(manifest.shards)} shards "
                     f"({sum(s.bytes for s in manifest.shards) / 1e6:.2f} MB)")
        lines.append("  columns: " + ", ".join(f"{f.name}:{f.type}" for f in schema))
        if manifest.label_counts:
            top = max(manifest.label_counts.values())
            lines.append(f"  labels ({len(manifest.label_counts)} classes):")
            for label, count in manifest.label_counts.items():
                bar = "#" * max(1, round(30 * count / top))
                lines.append(f"    {label:>12} {count:6d} {bar}")
            lines += class_mix_lines(classes_per_shard(fs, paths), len(manifest.label_counts))
        else:
            lines.append("  labels: none")
    return "\n".join(lines)


# records shown per preview: as many as stay legible on one page
PREVIEW_COUNTS = {"image": 64, "audio": 12, "lidar": 4}


def write_preview(uri: str, out_path: str, count: int | None = None) -> str:
    """A PNG of the first `count` records of the first split: images with labels, log-mel spectrograms with
    labels (audio), top and side views coloured by height (LiDAR)."""
    from distributed_ssl.preview.preview_audio import write_audio_preview
    from distributed_ssl.preview.preview_image import write_image_preview
    from distributed_ssl.preview.preview_lidar import write_lidar_preview

    writers = {"image": write_image_preview, "audio": write_audio_preview, "lidar": write_lidar_preview}
    path = next(iter(split_dirs(uri).values()))
    manifest = load_manifest(path)
    if manifest.modality not in writers:
        raise ValueError(f"no preview for modality {manifest.modality!r} of {path}; known: {', '.join(writers)}")
    fs, _ = storage.resolve(path)
    table = read_shard(fs, shard_paths(path, manifest)[0], manifest.shards[0], manifest.modality)
    table = table.slice(0, count or PREVIEW_COUNTS[manifest.modality])
    return writers[manifest.modality](table, manifest.classes, out_path)

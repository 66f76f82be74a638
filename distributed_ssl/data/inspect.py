"""`dssl data inspect`: what a shard folder holds, as text and as a preview picture."""

from __future__ import annotations

import pyarrow.parquet as pq

from distributed_ssl.data.image_io import decode_image
from distributed_ssl.data.manifest import DatasetError, load_manifest, shard_paths
from distributed_ssl.data.schemas import check_schema
from distributed_ssl.data.shard_reader import read_shard
from distributed_ssl.data.splits import split_dirs
from distributed_ssl.util import storage


def describe(uri: str) -> str:
    lines = []
    for name, path in split_dirs(uri).items():
        manifest = load_manifest(path)
        fs, _ = storage.resolve(path)
        first = shard_paths(path, manifest)[0]
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
        else:
            lines.append("  labels: none")
    return "\n".join(lines)


def write_preview(uri: str, out_path: str, count: int = 64) -> str:
    """A grid of the first `count` images of the first split, with their labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path = next(iter(split_dirs(uri).values()))
    manifest = load_manifest(path)
    if manifest.modality != "image":
        raise ValueError(f"preview is available for image shards; {path} holds {manifest.modality}")
    fs, _ = storage.resolve(path)
    table = read_shard(fs, shard_paths(path, manifest)[0], manifest.shards[0], "image", ["image", "label"])
    table = table.slice(0, count)
    images, labels = table.column("image").to_pylist(), table.column("label").to_pylist()
    cols = 8
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, data, label in zip(axes.flat, images, labels, strict=False):
        img = decode_image(data, "RGB", where=f"a record of {path}")
        ax.imshow(img)
        if label is not None:
            name = manifest.classes[label] if label < len(manifest.classes) else str(label)
            ax.set_title(name, fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path

"""Pictures of a pruning run: the score histogram, and for images the most and least prototypical per cluster."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import torch  # noqa: E402

from distributed_ssl.data.image_io import decode_image  # noqa: E402
from distributed_ssl.data.kept_ids import keep_rows  # noqa: E402
from distributed_ssl.data.manifest import load_manifest  # noqa: E402
from distributed_ssl.data.shard_reader import read_shards  # noqa: E402
from distributed_ssl.util import storage  # noqa: E402


def plot_score_histogram(scores: torch.Tensor, kept: torch.Tensor, path: str, title: str) -> str:
    """Histogram of per-record scores, kept and pruned records stacked in two colours."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(float(scores.min()), float(scores.max()) + 1e-9, 41)
    ax.hist([scores[kept].numpy(), scores[~kept].numpy()], bins=bins, stacked=True,
            label=[f"kept ({int(kept.sum())})", f"pruned ({int((~kept).sum())})"], color=["tab:blue", "tab:gray"])
    ax.set_xlabel("score")
    ax.set_ylabel("records")
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    _save(fig, path, dpi=110)
    plt.close(fig)
    return path


def _load_images(shards: str, wanted: list[str]) -> dict[str, np.ndarray]:
    value_set = pa.array(wanted, pa.string())
    images = {}
    for table in read_shards(shards, load_manifest(shards), ["id", "image"]):
        table = keep_rows(table, value_set)
        for rid, data in zip(table["id"].to_pylist(), table["image"].to_pylist(), strict=True):
            images[rid] = decode_image(data, "RGB", where=f"record {rid!r} of {shards}")
    return images


def plot_prototypes(shards: str, ids: list[str], clusters: torch.Tensor, scores: torch.Tensor, path: str,
                    per_side: int = 6, max_clusters: int = 10) -> str:
    """One row per cluster (the largest `max_clusters`): its `per_side` most prototypical images (closest to the
    centroid) on the left, its `per_side` least prototypical on the right."""
    sizes = torch.bincount(clusters)
    shown = torch.argsort(sizes, descending=True)[:max_clusters].tolist()
    rows: list[tuple[int, list[str], list[str]]] = []
    for c in shown:
        members = (clusters == c).nonzero().flatten()
        order = members[torch.argsort(scores[members])]
        near = [ids[i] for i in order[:per_side].tolist()]
        far = [ids[i] for i in order.flip(0)[:per_side].tolist()][::-1]
        rows.append((c, near, far))
    images = _load_images(shards, [rid for _, near, far in rows for rid in near + far])
    # One mosaic array and one imshow: a subplot per image costs seconds of matplotlib time for ~100 images.
    side = max(img.shape[0] for img in images.values())
    cell, gap = side + 2, side // 2
    mosaic = np.full((len(rows) * cell, (2 * per_side) * cell + gap, 3), 255, dtype=np.uint8)
    for r, (_, near, far) in enumerate(rows):
        for j, rid in enumerate(near):
            _paste(mosaic, images[rid], r * cell + 1, j * cell + 1)
        for j, rid in enumerate(far):
            _paste(mosaic, images[rid], r * cell + 1, (2 * per_side - len(far) + j) * cell + gap + 1)
    fig, ax = plt.subplots(figsize=(2 * per_side * 0.7 + 1.5, len(rows) * 0.7 + 0.6))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([per_side * cell / 2, per_side * cell + gap + per_side * cell / 2],
                  ["most prototypical", "least prototypical"])
    ax.set_yticks([r * cell + cell / 2 for r in range(len(rows))],
                  [f"cluster {c} (n={int(sizes[c])})" for c, _, _ in rows], fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    _save(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _save(fig, path: str, **options) -> None:
    """A PNG to a local path or a URI (the pruning output folder may be on object storage)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **options)
    fs, where = storage.resolve(path)
    storage.write_bytes(fs, where, buffer.getvalue())


def _paste(mosaic: np.ndarray, img: np.ndarray, top: int, left: int) -> None:
    mosaic[top:top + img.shape[0], left:left + img.shape[1]] = img

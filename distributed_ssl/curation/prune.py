"""`dssl data prune`: cluster a shard folder's embeddings, score every record and keep a subset.

Outputs, in one folder: `kept_ids.json` (what `data.keep_ids` reads), `scores.parquet` (per record: cluster,
cosine distance to its centroid, SemDedup redundancy, kept), `score_histogram.png`, for images
`prototypes.png`, and with `write_shards` a `shards/` folder holding only the kept records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from distributed_ssl.curation.embed import load_embeddings
from distributed_ssl.curation.kmeans import spherical_kmeans
from distributed_ssl.curation.semdedup import redundancy_scores, semdedup_keep
from distributed_ssl.curation.strategies import balanced_keep, num_to_keep, prototype_keep, random_keep
from distributed_ssl.data.kept_ids import KeptIds, keep_rows, write_kept_ids
from distributed_ssl.data.manifest import DatasetError, load_manifest, manifest_fingerprint
from distributed_ssl.data.shard_reader import read_shards
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.util import storage

STRATEGIES = ("prototype", "semdedup", "balanced", "random")


@dataclass
class PruneOptions:
    strategy: Literal["prototype", "semdedup", "balanced", "random"]
    keep: float | None = None  # fraction kept; semdedup takes either this or `threshold`
    k: int = 10  # k-means clusters
    prefer: Literal["hard", "easy"] = "hard"  # prototype: hard for abundant data, easy for scarce data
    threshold: float | None = None  # semdedup: drop records more similar than this to a kept one
    init: Literal["kmeans++", "random"] = "kmeans++"
    iters: int = 300
    seed: int = 0
    write_shards: bool = False
    plots: bool = True


def read_ids(shards: str) -> list[str]:
    """Record ids of a shard folder, in shard order (the id column only, of verified shards)."""
    return [i for table in read_shards(shards, load_manifest(shards), ["id"]) for i in table["id"].to_pylist()]


def align(ids: list[str], emb_ids: list[str], embeddings: torch.Tensor, shards: str, emb_uri: str) -> torch.Tensor:
    """Embeddings in the shards' record order; every record must have one."""
    row = {rid: i for i, rid in enumerate(emb_ids)}
    missing = [rid for rid in ids if rid not in row]
    if missing:
        raise DatasetError(f"--embeddings {emb_uri} has no embedding for {len(missing)} records of {shards} "
                           f"(first: {missing[0]!r}); embed this shard folder with `dssl data embed`")
    return embeddings[torch.tensor([row[rid] for rid in ids], dtype=torch.long)]


def select(opts: PruneOptions, embeddings: torch.Tensor | None, total: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """(kept indices, per-record score columns) for one strategy."""
    num_keep = num_to_keep(total, opts.keep) if opts.keep is not None else None
    if opts.strategy == "random":
        if num_keep is None:
            raise ValueError("--strategy random needs --keep")
        return random_keep(total, num_keep, opts.seed), {}
    if embeddings is None:
        raise ValueError(f"--strategy {opts.strategy} needs --embeddings")
    clusters = spherical_kmeans(embeddings, min(opts.k, total), init=opts.init, iters=opts.iters, seed=opts.seed)
    columns: dict[str, Any] = {"cluster": clusters.assignments, "score": clusters.distances}
    if opts.strategy == "semdedup":
        if (opts.threshold is None) == (num_keep is None):
            raise ValueError("--strategy semdedup takes either --keep or --threshold (not both)")
        redundancy = redundancy_scores(embeddings, clusters.assignments, clusters.distances)
        columns["redundancy"] = redundancy
        return semdedup_keep(redundancy, opts.threshold, None if opts.threshold is not None else num_keep), columns
    if num_keep is None:
        raise ValueError(f"--strategy {opts.strategy} needs --keep")
    if opts.strategy == "prototype":
        return prototype_keep(clusters.distances, num_keep, opts.prefer), columns
    if opts.strategy == "balanced":
        return balanced_keep(clusters.assignments, num_keep, opts.seed), columns
    raise ValueError(f"unknown strategy {opts.strategy!r}; known: {', '.join(STRATEGIES)}")


def write_kept_shards(shards: str, kept_ids: list[str], out: str) -> int:
    """Copy the kept records into a new shard folder (for readers that cannot filter by id)."""
    manifest = load_manifest(shards)
    kept = pa.array(kept_ids, pa.string())
    size = max(s.num_records for s in manifest.shards)
    with ShardWriter(out, manifest.modality, shard_size=size, classes=manifest.classes) as writer:
        for table in read_shards(shards, manifest):
            for row in keep_rows(table, kept).to_pylist():
                writer.add(row)
    return load_manifest(out).num_records


def prune(shards: str, out: str, opts: PruneOptions, embeddings_uri: str | None = None) -> dict[str, Any]:
    """Run one pruning strategy over `shards` and write its outputs to `out`; returns a summary."""
    from distributed_ssl.curation.plots import plot_prototypes, plot_score_histogram

    if opts.threshold is not None and opts.strategy != "semdedup":
        raise ValueError("--threshold applies to --strategy semdedup only")
    manifest = load_manifest(shards)
    ids = read_ids(shards)
    embeddings = None
    if embeddings_uri:
        emb_ids, emb = load_embeddings(embeddings_uri)
        embeddings = align(ids, emb_ids, emb, shards, embeddings_uri)
    kept_idx, columns = select(opts, embeddings, len(ids))
    kept_mask = torch.zeros(len(ids), dtype=torch.bool)
    kept_mask[kept_idx] = True
    kept_ids = [ids[i] for i in kept_idx.tolist()]
    details = {"keep": opts.keep, "k": opts.k, "prefer": opts.prefer, "threshold": opts.threshold,
               "init": opts.init, "seed": opts.seed, "embeddings": embeddings_uri}
    fs, root = storage.resolve(out)
    fs.create_dir(root, recursive=True)
    write_kept_ids(KeptIds(storage.normalize(shards),
                           manifest.num_records, opts.strategy, kept_ids, details,
                           source_fingerprint=manifest_fingerprint(manifest)), out)
    table = {"id": pa.array(ids, pa.string()), "kept": pa.array(kept_mask.numpy())}
    table.update({name: pa.array(col.numpy()) for name, col in columns.items()})
    pq.write_table(pa.table(table), storage.join(root, "scores.parquet"), filesystem=fs)
    summary: dict[str, Any] = {"strategy": opts.strategy, "records": len(ids), "kept": len(kept_ids),
                               "kept_fraction": round(len(kept_ids) / len(ids), 4),
                               "kept_ids": storage.join(root, "kept_ids.json")}
    if opts.plots and "score" in columns:  # a URI too: plots are written through storage
        summary["histogram"] = plot_score_histogram(columns["score"], kept_mask, f"{out}/score_histogram.png",
                                                    title=f"{opts.strategy}: cosine distance to nearest centroid")
        if manifest.modality == "image":
            summary["prototypes"] = plot_prototypes(shards, ids, columns["cluster"], columns["score"],
                                                    f"{out}/prototypes.png")
    if opts.write_shards:
        summary["shards"] = storage.join(root, "shards")
        write_kept_shards(shards, kept_ids, summary["shards"])
    return summary

"""The raw training records of data.train as a Ray Dataset: verified shards, `data.keep_ids` applied.

The first half of the pipeline; `modalities/train_dataset.py` adds shuffling and the views and masks.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import ray.data
from ray.data import RandomSeedConfig

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.data.kept_ids import KeptIds, check_matches, keep_rows, load_kept_ids
from distributed_ssl.data.manifest import (
    DatasetError,
    Manifest,
    ShardInfo,
    check_shard_schemas,
    load_manifest,
    shard_paths,
)
from distributed_ssl.data.preprocess_tasks import preprocess_compute
from distributed_ssl.data.shard_reader import read_shard
from distributed_ssl.util import storage


def open_train_manifest(cfg: SSLConfig) -> Manifest:
    manifest = load_manifest(cfg.data.train)
    if manifest.modality != cfg.modality.name:
        raise DatasetError(f"data.train={cfg.data.train} holds {manifest.modality} records, "
                           f"but modality.name is {cfg.modality.name}")
    check_shard_schemas(cfg.data.train, manifest)
    return manifest


def kept_ids_for(cfg: SSLConfig, manifest: Manifest) -> KeptIds | None:
    """The `data.keep_ids` manifest checked against data.train, or None when training reads every record."""
    if not cfg.data.keep_ids:
        return None
    kept = load_kept_ids(cfg.data.keep_ids)
    check_matches(kept, cfg.data.keep_ids, cfg.data.train, manifest)
    return kept


def train_record_count(cfg: SSLConfig, manifest: Manifest) -> int:
    """Records one epoch reads: the kept ones when `data.keep_ids` is set."""
    kept = kept_ids_for(cfg, manifest)
    return kept.num_kept if kept else manifest.num_records


def fits_in_object_store_cache(cfg: SSLConfig, manifest: Manifest) -> bool:
    return sum(shard.bytes for shard in manifest.shards) < cfg.data.cache_raw_mb * 1024 * 1024


def _read_shard(fs: pafs.FileSystem, path: str, info: ShardInfo, modality: str, columns: list[str]) -> pa.Table:
    """One verified shard (sha256, exact schema, no pickled objects) with a `path` column, as
    `read_parquet(include_paths=True)` gives, so bad records name their shard."""
    table = read_shard(fs, path, info, modality, columns)
    return table.append_column("path", pa.array([path] * table.num_rows, pa.string()))


def _shard_rng(seed: int | None, shard: int) -> np.random.Generator:
    """The generator of one shard's row order in this execution (epoch) of the pipeline: fresh entropy without a
    seed; with one, fixed by (seed, shard, Ray Data's execution index), so each epoch differs and a rerun repeats."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([shard, ray.data.DataContext.get_current()._execution_idx, seed])


def _read_listed_shards(listing: pa.Table, root: str, manifest: Manifest, columns: list[str],
                        shuffle_seed: int | None = None, permute: bool = False) -> pa.Table:
    """The Ray Data step of the streaming branch: the shards named in `listing`, each read and verified, and with
    `permute` its rows in a random order (the shard order itself is shuffled before this step)."""
    fs, _ = storage.resolve(root)
    tables = []
    for path, i in zip(listing["path"].to_pylist(), listing["shard"].to_pylist(), strict=True):
        table = _read_shard(fs, path, manifest.shards[i], manifest.modality, columns)
        if permute:
            table = table.take(_shard_rng(shuffle_seed, i).permutation(table.num_rows))
        tables.append(table)
    return pa.concat_tables(tables)


def read_train_records(cfg: SSLConfig, columns: list[str], manifest: Manifest | None = None) -> ray.data.Dataset:
    """The raw records of data.train (the modality's `columns`), restricted to `data.keep_ids` when set.

    The streaming branch with `data.shuffle=local` returns them already shuffled (shard order and rows within a
    shard, afresh each epoch); the cached branch returns them in shard order."""
    manifest = manifest or open_train_manifest(cfg)
    fs, _ = storage.resolve(cfg.data.train)
    paths = shard_paths(cfg.data.train, manifest)
    kept = kept_ids_for(cfg, manifest)
    kept_array = pa.array(kept.ids, pa.string()) if kept is not None else None
    if fits_in_object_store_cache(cfg, manifest):
        # A small set is read here, once, and handed to Ray as blocks (one per shard): a Ray Data read job
        # would spend far longer starting its tasks than reading, on every run.
        tables = [_read_shard(fs, path, info, manifest.modality, columns)
                  for path, info in zip(paths, manifest.shards, strict=True)]
        if kept_array is not None:
            tables = [keep_rows(t, kept=kept_array) for t in tables]
        return ray.data.from_arrow(tables)
    # Larger sets stream from storage every epoch, one Ray task a shard, each shard verified like the small-set
    # path (sha256, exact schema, no pickled objects) before any of its values is used: `read_parquet` would
    # decode whatever the file holds.
    # With a local shuffle the shard list is put in a random order before any shard is read (a fresh order each
    # execution, i.e. each epoch) and every shard's rows are permuted as it is read: the stream starts at once,
    # where `randomize_block_order` after the read would be a barrier that reads the whole set first. The read
    # reserves the CPUs of a preprocessing task, so Ray Data fuses it with the decode + views step: one task reads a
    # shard and makes its views, and raw bytes never pass through the object store.
    local = cfg.data.shuffle == "local"
    pool = preprocess_compute(cfg)  # the same pool as the views step, so Ray Data still fuses the two
    shards = ray.data.from_items([{"path": path, "shard": i} for i, path in enumerate(paths)],
                                 override_num_blocks=len(paths))
    if local:
        shards = shards.randomize_block_order(seed=RandomSeedConfig(seed=cfg.data.shuffle_seed,
                                                                    reseed_after_execution=True))
    ds = shards.map_batches(functools.partial(_read_listed_shards, root=cfg.data.train, manifest=manifest,
                                              columns=columns, shuffle_seed=cfg.data.shuffle_seed, permute=local),
                            batch_format="pyarrow", batch_size=1, num_cpus=cfg.data.preprocess_cpus, compute=pool)
    if kept_array is not None:
        ds = ds.map_batches(functools.partial(keep_rows, kept=kept_array), batch_format="pyarrow",
                            batch_size=None, zero_copy_batch=True, num_cpus=cfg.data.preprocess_cpus, compute=pool)
    return ds

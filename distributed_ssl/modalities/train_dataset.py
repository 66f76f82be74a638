"""The streaming Ray Data pipeline: raw records → (shuffle) → decode + views + masks in map_batches."""

from __future__ import annotations

import ray.data
from ray.data import RandomSeedConfig

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.data.bad_records import LedgerAddress
from distributed_ssl.data.manifest import Manifest
from distributed_ssl.data.preprocess_tasks import preprocess_compute
from distributed_ssl.data.train_records import (
    fits_in_object_store_cache,
    open_train_manifest,
    read_train_records,
)
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.modalities.view_spec import ViewSpec
from distributed_ssl.modalities.views_task import ViewsTask

# Output blocks of the streaming branch's read + views tasks (Ray Data's default is 128 MiB).
STREAMED_BLOCK_BYTES = 4 * 1024 * 1024


def build_train_dataset(cfg: SSLConfig, spec: ViewSpec, manifest: Manifest | None = None,
                        ledger: LedgerAddress | None = None, epochs_per_pass: int = 1) -> ray.data.Dataset:
    """A lazy Dataset of model-ready batches; re-executed (and reshuffled) on every pass of its iterator.

    One pass holds `epochs_per_pass` epochs (the records that many times, shuffled together): a small set trained
    for many epochs then pays Ray Data's start-up (planning, the split coordinator, the first blocks) once a pass
    instead of once an epoch. The training loop counts epochs by steps, so an epoch stays N records' worth of
    batches; records of neighbouring epochs of one pass may mix.
    """
    manifest = manifest or open_train_manifest(cfg)
    # Ray Data's per-operator bars repeat every epoch in every worker's log; our step log reports progress.
    ray.data.DataContext.get_current().enable_progress_bars = False
    ds = read_train_records(cfg, build_modality(cfg).record_columns, manifest)
    streamed = not fits_in_object_store_cache(cfg, manifest)  # the branch read_train_records took
    if epochs_per_pass > 1:
        ds = ds.union(*[ds] * (epochs_per_pass - 1))  # the same blocks again, not copies
    if cfg.data.shuffle == "full":
        ds = ds.random_shuffle()
    elif cfg.data.shuffle == "local" and not streamed:
        # Cached blocks in a random order; a streamed set comes shuffled from its read (shard order and rows),
        # with no barrier before the first batch (data/train_records.py).
        ds = ds.randomize_block_order(seed=RandomSeedConfig(seed=cfg.data.shuffle_seed, reseed_after_execution=True))
    # ViewsTask builds the modality where it runs: the coordinators that only unpickle the plan skip torch
    ds = ds.map_batches(ViewsTask(cfg, spec, ledger), batch_format="numpy",
                        batch_size=cfg.data.preprocess_batch_size, num_cpus=cfg.data.preprocess_cpus,
                        compute=preprocess_compute(cfg))
    if streamed:
        # A streamed shard is read and turned into views by one task (data/train_records.py); smaller output blocks
        # let its first views go to the trainer while it works on the rest, instead of the whole shard at its end.
        ds.context.target_max_block_size = min(ds.context.target_max_block_size or STREAMED_BLOCK_BYTES,
                                               STREAMED_BLOCK_BYTES)
    return ds

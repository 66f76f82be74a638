"""A batch of real, model-ready inputs for checking an export: the run's eval records, else its training records.

Both go through the modality's own preprocessing without augmentation (`decode` + `eval_inputs`, what
`dssl eval` feeds the encoder), so an exported model is checked on exactly what it will be given.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.parquet as pq
import torch

from distributed_ssl.config.loader import ConfigError
from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.data.manifest import DatasetError, load_manifest, shard_paths
from distributed_ssl.data.splits import split_dirs
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.util import storage


@dataclass(frozen=True)
class ExampleBatch:
    inputs: torch.Tensor  # [B, ...] model-ready
    source: str  # the shard folder the records came from


def _first_records(uri: str, count: int) -> tuple[dict[str, list], str]:
    """The first `count` records of the first split of `uri`, as columns."""
    path = next(iter(split_dirs(uri).values()))
    manifest = load_manifest(path)
    fs, _ = storage.resolve(path)
    rows: dict[str, list] = {}
    for shard in shard_paths(path, manifest):
        table = pq.read_table(shard, filesystem=fs)
        for name in table.column_names:
            rows.setdefault(name, []).extend(table.column(name).to_pylist())
        if len(rows["id"]) >= count:
            break
    return {name: values[:count] for name, values in rows.items()}, path


def _exists(uri: str | None) -> bool:
    if not uri:
        return False
    fs, root = storage.resolve(uri)
    return storage.exists(fs, root)


def example_inputs(cfg: SSLConfig, count: int = 8) -> ExampleBatch:
    """`count` records of `data.eval` when that folder exists, else of `data.train`, preprocessed for the model."""
    candidates = [uri for uri in (cfg.data.eval, cfg.data.train) if _exists(uri)]
    if not candidates:
        raise ConfigError(f"no records to check the export on: neither data.eval ({cfg.data.eval}) nor data.train "
                          f"({cfg.data.train}) of the run's config exists here")
    records, path = _first_records(candidates[0], count)
    modality = build_modality(cfg)
    try:
        inputs = modality.eval_inputs(modality.decode(records))
    except ValueError as exc:
        raise DatasetError(f"cannot preprocess records of {path} for the export check: {exc}") from exc
    return ExampleBatch(inputs.float().contiguous(), path)

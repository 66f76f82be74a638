"""Load a labeled shard folder (or a train/val parent) into memory for probing."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.data.manifest import DatasetError, load_manifest
from distributed_ssl.data.shard_reader import read_shards
from distributed_ssl.data.splits import split_dirs
from distributed_ssl.modalities.registry import get_modality


@dataclass
class LabeledSplit:
    inputs: torch.Tensor  # model-ready, normalised
    labels: torch.Tensor  # int64 [N]
    num_classes: int


def load_labeled_split(uri: str, cfg: SSLConfig) -> LabeledSplit:
    manifest = load_manifest(uri)
    if manifest.modality != cfg.modality.name:
        raise DatasetError(f"{uri} holds {manifest.modality} records but modality.name is {cfg.modality.name}")
    modality = get_modality(cfg.modality.name)
    # verified (checksum, exact schema, no pickled objects), and only the columns the decoder and probe use
    tables = read_shards(uri, manifest, [*modality.record_columns, "label"])
    batch = {name: [] for name in tables[0].column_names}
    for table in tables:
        for name in batch:
            batch[name].extend(table.column(name).to_pylist())
    if any(label is None for label in batch["label"]):
        raise DatasetError(f"eval set {uri} has records without labels (data.eval must be labeled)")
    raw = modality.decode(batch, cfg)
    labels = torch.tensor(batch["label"], dtype=torch.long)
    num_classes = max(len(manifest.classes), int(labels.max()) + 1)
    return LabeledSplit(modality.eval_inputs(raw, cfg), labels, num_classes)


def load_labeled(uri: str, cfg: SSLConfig) -> dict[str, LabeledSplit]:
    """`{"train": ..., "val": ...}` for a parent of splits, else `{"all": ...}`."""
    return {name: load_labeled_split(path, cfg) for name, path in split_dirs(uri).items()}

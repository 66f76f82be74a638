"""Load a labeled shard folder (or a train/val parent) into memory for probing."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.data.bad_records import split_good_bad
from distributed_ssl.data.manifest import DatasetError, Manifest, load_manifest, manifest_fingerprint
from distributed_ssl.data.shard_reader import read_shards
from distributed_ssl.data.splits import split_dirs
from distributed_ssl.modalities.decode_errors import RecordDecodeError
from distributed_ssl.modalities.registry import build_modality

log = logging.getLogger("distributed_ssl.eval")


@dataclass
class LabeledSplit:
    inputs: torch.Tensor  # model-ready, normalised
    labels: torch.Tensor  # int64 [N]
    num_classes: int
    skipped: int = 0  # undecodable records left out (data.max_bad_fraction)


def _drop_bad_records(batch: dict[str, list], decode, uri: str, max_bad_fraction: float) -> dict[str, list]:
    """The batch without its undecodable records, or DatasetError when more fail than the config allows.

    The same rule as for training records: counted and skipped up to data.max_bad_fraction, else the run fails
    at once naming a record, before any worker starts (a corrupt eval record would crash every worker, and
    Ray would retry the whole run as if it were a crash).
    """
    good, bad = split_good_bad(decode, batch)
    total = len(good) + len(bad)
    limit = int(max_bad_fraction * total)
    first = f"record {bad[0]['id']}: {bad[0]['reason']}"
    if len(bad) > limit:
        raise DatasetError(f"data.eval={uri}: {len(bad)} of {total} records cannot be decoded, more than "
                           f"data.max_bad_fraction={max_bad_fraction} allows ({limit}); first: {first}")
    log.warning("data.eval=%s: skipped %d undecodable records of %d (first: %s)", uri, len(bad), total, first)
    return {name: [values[i] for i in good] for name, values in batch.items()}


# Splits this process decoded lately, by what they were decoded from: the runs of one driver (retraining passes,
# a sweep's driver, a test session) probe the same set, and decoding is ~1.4 CPU-s per 1,800 small images before
# a run can start. Only clean splits of moderate size are kept; callers must not modify the tensors in place.
_DECODED: dict[tuple[str, ...], LabeledSplit] = {}
_DECODED_MAX_SPLITS = 4
_DECODED_MAX_BYTES = 128 * 1024 * 1024


def load_labeled_split(uri: str, cfg: SSLConfig) -> LabeledSplit:
    manifest = load_manifest(uri)
    if manifest.modality != cfg.modality.name:
        raise DatasetError(f"{uri} holds {manifest.modality} records but modality.name is {cfg.modality.name}")
    # what the modality object is built from (modalities/registry.py), whichever parts decoding reads
    key = (uri, manifest_fingerprint(manifest), cfg.modality.model_dump_json(), cfg.augment.model_dump_json(),
           cfg.mask.model_dump_json(), str(cfg.model.patch_size))
    if key in _DECODED:
        return _DECODED[key]
    split = _decode_split(uri, manifest, cfg)
    if split.skipped == 0 and split.inputs.nbytes <= _DECODED_MAX_BYTES:
        while len(_DECODED) >= _DECODED_MAX_SPLITS:
            _DECODED.pop(next(iter(_DECODED)))
        _DECODED[key] = split
    return split


def _decode_split(uri: str, manifest: Manifest, cfg: SSLConfig) -> LabeledSplit:
    """Every record of the split decoded to model-ready inputs (bad records: see _drop_bad_records)."""
    modality = build_modality(cfg)
    # verified (checksum, exact schema, no pickled objects), and only the columns the decoder and probe use
    tables = read_shards(uri, manifest, [*modality.record_columns, "label"])
    batch = {name: [] for name in tables[0].column_names}
    for table in tables:
        for name in batch:
            batch[name].extend(table.column(name).to_pylist())
    if any(label is None for label in batch["label"]):
        raise DatasetError(f"eval set {uri} has records without labels (data.eval must be labeled)")
    total = len(batch["label"])
    try:
        raw = modality.decode(batch)
    except RecordDecodeError:
        batch = _drop_bad_records(batch, modality.decode, uri, cfg.data.max_bad_fraction)
        raw = modality.decode(batch)
    labels = torch.tensor(batch["label"], dtype=torch.long)
    num_classes = max(len(manifest.classes), int(labels.max()) + 1)
    return LabeledSplit(modality.eval_inputs(raw), labels, num_classes, skipped=total - len(labels))


def load_labeled(uri: str, cfg: SSLConfig) -> dict[str, LabeledSplit]:
    """`{"train": ..., "val": ...}` for a parent of splits, else `{"all": ...}`."""
    return {name: load_labeled_split(path, cfg) for name, path in split_dirs(uri).items()}

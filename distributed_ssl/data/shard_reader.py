"""Read one shard on this process (driver-side small sets, probes, curation), checked before any value is used.

A shard is untrusted input: its bytes are read once, hashed and compared with the manifest's sha256, its Parquet
schema must be exactly the modality's (no extension types), only the known columns are decoded, and Ray's guard
against pickled-object columns runs on the table. Works on any pyarrow filesystem (local, s3://, gs://).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from ray.data._internal.object_extensions.arrow import raise_on_pickle_object_columns

from distributed_ssl.data.manifest import DatasetError, Manifest, ShardInfo, load_manifest
from distributed_ssl.data.schemas import check_schema, column_names
from distributed_ssl.util import storage


def read_shard_bytes(fs: pafs.FileSystem, path: str, info: ShardInfo) -> pa.Buffer:
    """The shard's bytes, refused unless their size and sha256 are the ones the manifest recorded."""
    try:
        with fs.open_input_stream(path) as stream:
            data = stream.read_buffer()
    except OSError as exc:
        raise DatasetError(f"cannot read shard {path}: {exc}") from exc
    digest = hashlib.sha256(memoryview(data)).hexdigest()
    if digest != info.sha256:
        raise DatasetError(f"shard {path} has sha256 {digest} ({data.size} bytes), but manifest.json records "
                           f"{info.sha256} ({info.bytes} bytes): the file changed after it was written "
                           "(convert the source files again with `dssl data convert`)")
    return data


def checked_table(table: pa.Table, where: str) -> pa.Table:
    """Ray's own refusal of pickled-object columns, as a DatasetError naming the file (kept as a second guard
    after the schema check; it also covers Parquet files that are not shards, such as embeddings)."""
    try:
        raise_on_pickle_object_columns(table)
    except ValueError as exc:
        raise DatasetError(f"{where}: {exc}") from exc
    return table


def read_shard(fs: pafs.FileSystem, path: str, info: ShardInfo, modality: str,
               columns: list[str] | None = None) -> pa.Table:
    """One verified shard as a table of `columns` (default: every column of the modality's schema)."""
    buffer = read_shard_bytes(fs, path, info)
    try:
        parquet = pq.ParquetFile(pa.BufferReader(buffer))
        check_schema(parquet.schema_arrow, modality, path)
        wanted = columns or column_names(modality)
        unknown = sorted(set(wanted) - set(column_names(modality)))
        if unknown:
            raise ValueError(f"{path}: {modality} shards have no columns {unknown}")
        table = parquet.read(columns=wanted)
    except (ValueError, OSError) as exc:  # ArrowInvalid (not Parquet) is a ValueError
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(str(exc) if path in str(exc) else f"{path}: {exc}") from exc
    if table.num_rows != info.num_records:
        raise DatasetError(f"shard {path} holds {table.num_rows} records, manifest.json records {info.num_records}")
    return checked_table(table, path)


def read_shards(uri: str, manifest: Manifest, columns: list[str] | None = None) -> list[pa.Table]:
    """Every shard of the folder `uri`, in manifest order, each verified by `read_shard`."""
    fs, root = storage.resolve(uri)
    return [read_shard(fs, storage.join(root, info.file), info, manifest.modality, columns)
            for info in manifest.shards]


def read_columns(uri: str, columns: list[str]) -> dict[str, np.ndarray]:
    """Every record of the shard folder `uri` as one numpy array per column, as Ray Data's numpy batches hold
    them: for a plain training loop over a small set (tests, benchmarks)."""
    tables = read_shards(uri, load_manifest(uri), columns)
    return {c: np.concatenate([t[c].to_numpy(zero_copy_only=False) for t in tables]) for c in columns}

"""Write records into size-bounded Parquet shards and a manifest with counts and checksums."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distributed_ssl.data.manifest import MANIFEST_NAME, Manifest, ShardInfo
from distributed_ssl.data.schemas import schema_for
from distributed_ssl.util import storage


class ShardWriter:
    """Buffers records and flushes a Parquet shard every `shard_size` records.

    Shards are first written under a temporary name and renamed, so a crash never leaves a half
    shard that a manifest lists. The manifest is written last, by `close()`.
    """

    def __init__(self, out_uri: str, modality: str, shard_size: int = 1024, classes: list[str] | None = None):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.fs, self.root = storage.resolve(out_uri)
        self.fs.create_dir(self.root, recursive=True)
        self.schema = schema_for(modality)
        self.shard_size = shard_size
        self.manifest = Manifest(modality=modality, classes=list(classes or []))
        self._buffer: list[dict[str, Any]] = []
        self._labels: Counter[str] = Counter()

    def add(self, record: dict[str, Any]) -> None:
        self._buffer.append(record)
        label = record.get("label")
        if label is not None:
            name = self.manifest.classes[label] if label < len(self.manifest.classes) else str(label)
            self._labels[name] += 1
        if len(self._buffer) >= self.shard_size:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        index = len(self.manifest.shards)
        name = f"shard-{index:05d}.parquet"
        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        tmp = storage.join(self.root, f".{name}.tmp")
        with self.fs.open_output_stream(tmp) as stream:
            stream.write(data)
        self.fs.move(tmp, storage.join(self.root, name))
        self.manifest.shards.append(ShardInfo(name, table.num_rows, hashlib.sha256(data).hexdigest(), len(data)))
        self.manifest.num_records += table.num_rows
        self._buffer = []

    def close(self) -> Manifest:
        """Flush the last shard and write `manifest.json`."""
        self._flush()
        self.manifest.label_counts = dict(sorted(self._labels.items()))
        self.manifest.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        storage.write_text(self.fs, storage.join(self.root, MANIFEST_NAME), self.manifest.to_json())
        return self.manifest

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()

"""The kept-ids manifest: which records of a shard folder a pruning run kept, read by `data.keep_ids`.

Training filters its Ray Data stream against this list, so a pruned dataset costs one small JSON file instead
of a second copy of the shards. The manifest records a fingerprint of its source's shards (sha256 over their
sorted checksums) and how many records they held, so a list made for other shards fails at load instead of
silently training on the wrong subset.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from distributed_ssl.data.manifest import DatasetError, Manifest, manifest_fingerprint
from distributed_ssl.util import storage

KEPT_IDS_FILE = "kept_ids.json"


@dataclass
class KeptIds:
    source: str  # the shard folder the ids refer to
    source_records: int  # records it held when pruned
    strategy: str
    ids: list[str]
    details: dict[str, Any] = field(default_factory=dict)  # keep fraction, k, threshold, seed, ...
    source_fingerprint: str = ""  # manifest_fingerprint() of the source; empty in files of older releases

    @property
    def num_kept(self) -> int:
        return len(self.ids)


def kept_ids_path(uri: str) -> str:
    """A pruning output folder or the kept-ids file itself → the file."""
    return uri if uri.endswith(".json") else uri.rstrip("/") + "/" + KEPT_IDS_FILE


def write_kept_ids(kept: KeptIds, out_dir: str) -> str:
    fs, root = storage.resolve(out_dir)
    fs.create_dir(root, recursive=True)
    path = storage.join(root, KEPT_IDS_FILE)
    storage.write_text(fs, path, json.dumps({**asdict(kept), "num_kept": kept.num_kept}, indent=1))
    return path


def load_kept_ids(uri: str) -> KeptIds:
    """Read a kept-ids manifest (or the folder holding one), naming the file in every error."""
    path = kept_ids_path(uri)
    fs, root = storage.resolve(path)
    if not storage.exists(fs, root):
        raise DatasetError(f"data.keep_ids={uri}: no such file or folder (expected a {KEPT_IDS_FILE} written by "
                           "`dssl data prune`)")
    try:
        raw = json.loads(storage.read_text(fs, root))
        raw.pop("num_kept", None)
        kept = KeptIds(**raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise DatasetError(f"data.keep_ids={uri}: not a kept-ids manifest ({exc})") from exc
    if not kept.ids:
        raise DatasetError(f"data.keep_ids={uri}: the manifest keeps no records")
    if not kept.source_fingerprint:
        raise DatasetError(f"data.keep_ids={uri} records no fingerprint of the shards it was made from (written by "
                           f"an older release); re-run `dssl data prune` on {kept.source}")
    return kept


def check_matches(kept: KeptIds, uri: str, shards_uri: str, manifest: Manifest) -> None:
    """Fail unless the kept ids were made from exactly the shards being trained on (same checksums)."""
    if kept.source_records != manifest.num_records:
        raise DatasetError(f"data.keep_ids={uri} was made from {kept.source} ({kept.source_records} records), "
                           f"but data.train={shards_uri} holds {manifest.num_records} records")
    found = manifest_fingerprint(manifest)
    if kept.source_fingerprint != found:
        raise DatasetError(f"data.keep_ids={uri} was made from other shards than data.train={shards_uri}: "
                           f"fingerprint {kept.source_fingerprint} recorded, {found} found (same record count, "
                           f"different shard checksums); re-run `dssl data prune` on {shards_uri}")


def keep_rows(table: pa.Table, kept: pa.Array) -> pa.Table:
    """Rows of `table` whose `id` is in `kept`: the Ray Data batch filter (vectorised, Arrow hash set)."""
    return table.filter(pc.is_in(table["id"], value_set=kept))

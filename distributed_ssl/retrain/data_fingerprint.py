"""What data a model was trained on, as the shard checksums of `manifest.json`.

A pass compares the shard folder's current checksums with those recorded for the last trained model: shards
are immutable once written, so a checksum not seen before is new data, and none means there is nothing to do.
Checksums, not file names or counts, so that a rewritten shard counts as new and a renamed one does not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from distributed_ssl.data.manifest import load_manifest


@dataclass(frozen=True)
class DataSnapshot:
    """The shards of a folder at one moment: (file, sha256, records) each, sorted by checksum."""

    uri: str
    shards: tuple[tuple[str, str, int], ...]

    @property
    def num_records(self) -> int:
        return sum(n for _, _, n in self.shards)

    @property
    def checksums(self) -> frozenset[str]:
        return frozenset(sha for _, sha, _ in self.shards)

    @property
    def fingerprint(self) -> str:
        """One short hash of the whole shard set: equal sets, equal fingerprints."""
        joined = "\n".join(sorted(self.checksums)).encode()
        return hashlib.sha256(joined).hexdigest()[:16]

    def new_since(self, earlier: DataSnapshot | None) -> list[str]:
        """Files of shards whose checksum `earlier` did not have (all of them when there is no `earlier`)."""
        seen = earlier.checksums if earlier else frozenset()
        return [f for f, sha, _ in self.shards if sha not in seen]

    def to_json(self) -> str:
        return json.dumps({"uri": self.uri, "fingerprint": self.fingerprint, "num_records": self.num_records,
                           "shards": [dict(zip(("file", "sha256", "num_records"), s, strict=True))
                                      for s in self.shards]}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> DataSnapshot:
        raw = json.loads(text)
        return cls(raw["uri"], tuple(sorted((s["file"], s["sha256"], int(s["num_records"])) for s in raw["shards"])))


def snapshot(uri: str) -> DataSnapshot:
    """Read the folder's manifest (no shard is opened) into a snapshot."""
    manifest = load_manifest(uri)
    shards = tuple(sorted((s.file, s.sha256, s.num_records) for s in manifest.shards))
    return DataSnapshot(uri, shards)

"""`manifest.json`: what a shard folder holds, so readers can check counts and checksums without scanning."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from distributed_ssl.data.schemas import SCHEMA_VERSION, check_schema
from distributed_ssl.util import storage

MANIFEST_NAME = "manifest.json"


class DatasetError(ValueError):
    """A shard folder is missing, empty or inconsistent; the message names the path."""


@dataclass
class ShardInfo:
    file: str
    num_records: int
    sha256: str
    bytes: int


@dataclass
class Manifest:
    modality: str
    schema_version: int = SCHEMA_VERSION
    num_records: int = 0
    classes: list[str] = field(default_factory=list)
    shards: list[ShardInfo] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)
    created: str = ""

    @property
    def has_labels(self) -> bool:
        return bool(self.label_counts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        raw["shards"] = [ShardInfo(**s) for s in raw.get("shards", [])]
        return cls(**raw)


def load_manifest(uri: str) -> Manifest:
    """Read `URI/manifest.json`, failing with the folder's name if it is not a shard folder."""
    fs, root = storage.resolve(uri)
    path = storage.join(root, MANIFEST_NAME)
    if not storage.exists(fs, root):
        raise DatasetError(f"shard folder not found: {uri}")
    if not storage.exists(fs, path):
        raise DatasetError(f"{uri} is not a shard folder: no {MANIFEST_NAME} (make one with `dssl data convert`)")
    try:
        manifest = Manifest.from_json(storage.read_text(fs, path))
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError; TypeError: unknown/missing keys
        raise DatasetError(f"{uri}/{MANIFEST_NAME} is not a valid manifest: {exc}") from exc
    if manifest.schema_version != SCHEMA_VERSION:
        raise DatasetError(f"{uri} was written with schema_version={manifest.schema_version}; this version reads "
                           f"{SCHEMA_VERSION} (convert the source files again with `dssl data convert`)")
    if manifest.num_records == 0:
        raise DatasetError(f"shard folder {uri} holds no records")
    for shard in manifest.shards:
        check_shard_name(shard.file, f"{uri}/{MANIFEST_NAME}")
    return manifest


def check_shard_name(name: str, where: str) -> None:
    """A manifest lists file names inside its own folder: a path (`/`, `\\`, `..`) could point readers anywhere."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or ".." in name:
        raise DatasetError(f"{where} lists shard {name!r}: a shard must be a plain file name in the manifest's "
                           "folder (no '/', '\\' or '..')")


def manifest_fingerprint(manifest: Manifest) -> str:
    """sha256 over the sorted shard checksums: names the records a folder holds, whatever it is called."""
    return hashlib.sha256("\n".join(sorted(s.sha256 for s in manifest.shards)).encode()).hexdigest()


def shard_paths(uri: str, manifest: Manifest | None = None) -> list[str]:
    """Full paths of the shards a manifest lists (relative to its folder)."""
    manifest = manifest or load_manifest(uri)
    _, root = storage.resolve(uri)
    return [storage.join(root, s.file) for s in manifest.shards]


def check_shard_schemas(uri: str, manifest: Manifest) -> None:
    """Every shard's own Arrow schema must be exactly the manifest's modality's, and its size the recorded one.

    Only Parquet footers are read (in parallel, for object stores); a shard copied in from another folder or
    another release of the converter fails here, before any worker starts, instead of mid-epoch. (The sha256 is
    checked where a shard's bytes are read on this process, by `shard_reader.read_shard`.)
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    fs, _ = storage.resolve(uri)

    def check(path: str, info: ShardInfo) -> None:
        try:
            check_schema(pq.read_schema(path, filesystem=fs), manifest.modality, path)
            size = fs.get_file_info(path).size
        except (ValueError, OSError) as exc:  # ArrowInvalid (not Parquet) is a ValueError
            raise DatasetError(str(exc)) from exc
        if size != info.bytes:
            raise DatasetError(f"shard {path} is {size} bytes, but manifest.json records {info.bytes}: the file "
                               "changed after it was written (convert the source files again)")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(check, shard_paths(uri, manifest), manifest.shards))

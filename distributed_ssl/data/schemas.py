"""One Arrow schema per modality, versioned so that readers can refuse shards they do not understand."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1
MODALITY_KEY = b"dssl.modality"
VERSION_KEY = b"dssl.schema_version"

_FIELDS: dict[str, list[pa.Field]] = {
    "image": [
        pa.field("id", pa.string(), nullable=False),
        pa.field("image", pa.binary(), nullable=False),  # encoded PNG or JPEG bytes, decoded on the fly
        pa.field("format", pa.string(), nullable=False),
        pa.field("label", pa.int64(), nullable=True),
        pa.field("source", pa.string(), nullable=True),
    ],
    "audio": [
        pa.field("id", pa.string(), nullable=False),
        # FLAC or WAV file bytes, or raw float32 little-endian mono samples when format is "f32le"
        pa.field("audio", pa.binary(), nullable=False),
        pa.field("format", pa.string(), nullable=False),  # flac | wav | f32le
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("duration", pa.float32(), nullable=False),  # seconds
        pa.field("label", pa.int64(), nullable=True),
        pa.field("source", pa.string(), nullable=True),
    ],
    "lidar": [
        pa.field("id", pa.string(), nullable=False),
        # float32 little-endian rows (x, y, z, intensity), num_points of them; bytes keep reads zero-copy
        pa.field("points", pa.binary(), nullable=False),
        pa.field("num_points", pa.int32(), nullable=False),
        pa.field("point_labels", pa.binary(), nullable=True),  # uint8 class per point, same order
        pa.field("label", pa.int64(), nullable=True),  # scene label
        pa.field("source", pa.string(), nullable=True),
    ],
}


def modalities() -> list[str]:
    return sorted(_FIELDS)


def schema_for(modality: str) -> pa.Schema:
    """The Arrow schema of a modality's shards, with modality and version in its metadata."""
    if modality not in _FIELDS:
        raise ValueError(f"unknown modality {modality!r}; known: {', '.join(modalities())}")
    return pa.schema(_FIELDS[modality], metadata={MODALITY_KEY: modality.encode(),
                                                  VERSION_KEY: str(SCHEMA_VERSION).encode()})


def check_schema(schema: pa.Schema, modality: str, where: str) -> None:
    """Refuse a shard of another modality or schema version, naming the shard."""
    meta = schema.metadata or {}
    found_modality = meta.get(MODALITY_KEY, b"?").decode()
    found_version = meta.get(VERSION_KEY, b"?").decode()
    if found_modality != modality or found_version != str(SCHEMA_VERSION):
        raise ValueError(
            f"{where}: shard has modality={found_modality} schema_version={found_version}, "
            f"expected modality={modality} schema_version={SCHEMA_VERSION}"
        )

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

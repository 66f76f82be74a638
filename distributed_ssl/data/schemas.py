"""One Arrow schema per modality, versioned so that readers can refuse shards they do not understand."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1
MODALITY_KEY = b"dssl.modality"
VERSION_KEY = b"dssl.schema_version"
# Parquet keeps an extension type's name in the field metadata even where the reading process has not
# registered the type; such a field is refused like a registered one.
EXTENSION_NAME_KEY = b"ARROW:extension:name"

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


def column_names(modality: str) -> list[str]:
    """The columns a shard of `modality` holds, in order: the only ones a reader asks Parquet for."""
    return [f.name for f in schema_for(modality)]


def extension_type_in(field: pa.Field) -> str | None:
    """The name of an extension type `field` is or nests (list items, struct fields, map keys...), else None.

    Extension types are refused outright: Ray's `ray.data.arrow_pickled_object` unpickles, so runs code, when a
    value is turned into Python.
    """
    name = (field.metadata or {}).get(EXTENSION_NAME_KEY)
    if name is not None:
        return name.decode(errors="replace")
    dtype = field.type
    if isinstance(dtype, pa.BaseExtensionType):
        return dtype.extension_name
    if pa.types.is_dictionary(dtype):
        return extension_type_in(pa.field("value", dtype.value_type))
    for i in range(dtype.num_fields):
        found = extension_type_in(dtype.field(i))
        if found is not None:
            return found
    return None


def check_schema(schema: pa.Schema, modality: str, where: str) -> None:
    """Refuse a shard whose schema is not exactly the modality's: its metadata (modality, schema version), then
    every column's name, Arrow type and nullability, in order. No extension type passes, however nested."""
    meta = schema.metadata or {}
    found_modality = meta.get(MODALITY_KEY, b"?").decode(errors="replace")
    found_version = meta.get(VERSION_KEY, b"?").decode(errors="replace")
    if found_modality != modality or found_version != str(SCHEMA_VERSION):
        raise ValueError(
            f"{where}: shard has modality={found_modality} schema_version={found_version}, "
            f"expected modality={modality} schema_version={SCHEMA_VERSION}"
        )
    for field in schema:
        extension = extension_type_in(field)
        if extension is not None:
            raise ValueError(f"{where}: column {field.name!r} has the Arrow extension type {extension!r}; shards "
                             "never hold extension types (some, like Ray's pickled objects, run code when read)")
    expected = schema_for(modality)
    if schema.names != expected.names:
        raise ValueError(f"{where}: shard has columns {schema.names}, a {modality} shard has exactly "
                         f"{expected.names}")
    for found, want in zip(schema, expected, strict=True):
        if found.type != want.type or found.nullable != want.nullable:
            raise ValueError(f"{where}: column {found.name!r} is {found.type} (nullable={found.nullable}), "
                             f"a {modality} shard has {want.type} (nullable={want.nullable})")

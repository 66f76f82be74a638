"""Per-modality shard writers behind `dssl data convert` and `dssl data sample`, registered by their own modules.

Each modality's converter module (`data/convert_<name>.py`) registers one `ShardSource`: which files it converts,
which built-in sample set it writes, and the two functions that do it. The CLI lists and calls what is registered,
so a new modality's converter is a new file, not an edit of the command line code.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from distributed_ssl.data.convert_report import ConvertReport
from distributed_ssl.data.manifest import Manifest


@dataclass(frozen=True)
class ConvertOptions:
    """`dssl data convert`'s options; each converter reads the ones that apply to it."""

    shard_size: int | None = None  # None: the converter's own default
    val_fraction: float = 0.1
    on_bad: str = "skip"
    max_file_mb: float = 512
    sample_rate: int = 16000  # audio
    tile_size: float = 50.0  # lidar
    min_points: int = 256  # lidar


@dataclass(frozen=True)
class SampleOptions:
    """`dssl data sample`'s options; each sample writer reads the ones that apply to it."""

    shard_size: int | None = None
    val_fraction: float = 0.2
    set: str = ""  # which of a modality's sets; "" is its quick default (image: digits; also photos)
    size: int = 32  # image
    per_class: int | None = None  # audio, lidar; None: the set's own default
    sample_rate: int = 16000  # audio
    beams: int = 16  # lidar
    range_noise: float = 0.02  # lidar


@dataclass(frozen=True)
class ShardSource:
    modality: str
    files: str  # what `dssl data convert` reads, for --help
    sample: str  # what `dssl data sample` writes, for --help
    convert: Callable[[str, str, ConvertOptions], ConvertReport]  # (source folder, output URI, options)
    write_sample: Callable[[str, SampleOptions], dict[str, Manifest]]  # (output URI, options) → split manifests
    sets: tuple[str, ...] = ()  # named sets beside the default one (`dssl data sample MODALITY OUT --set NAME`)


_SOURCES: dict[str, ShardSource] = {}
Options = TypeVar("Options", ConvertOptions, SampleOptions)


def register_shard_source(source: ShardSource) -> ShardSource:
    if source.modality in _SOURCES and _SOURCES[source.modality] != source:
        raise TypeError(f"modality {source.modality!r} has two shard sources")
    _SOURCES[source.modality] = source
    return source


def shard_sources() -> dict[str, ShardSource]:
    """Every registered source by modality, after importing each `distributed_ssl.data.convert_*` module."""
    import distributed_ssl.data as data_package

    for module in pkgutil.iter_modules(data_package.__path__):
        if module.name.startswith("convert_"):
            importlib.import_module(f"{data_package.__name__}.{module.name}")
    return dict(sorted(_SOURCES.items()))


def options_from(kind: type[Options], ns: argparse.Namespace | Any) -> Options:
    """The options dataclass filled from parsed arguments of the same names."""
    return kind(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(kind) if hasattr(ns, f.name)})

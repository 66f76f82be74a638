"""The architecture record written beside (and into) every exported file: enough to rebuild the encoder and to
prepare its inputs without the run directory.

It holds the registered encoder name, the resolved flavour dims, every argument `build_encoder` was given, the
model-ready input shape and the `modality` and `model` config sections (which preprocessing reads).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.modalities.input_shape import model_input_shape
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.models.registry import build_encoder

ARCHITECTURE_FORMAT = "dssl-encoder-architecture/1"
INPUT_NAME, OUTPUT_NAME = "inputs", "embeddings"


class ArchitectureError(ValueError):
    """An architecture file is missing, unreadable or of another format; the message names the file."""


def flavour_dims(encoder: nn.Module) -> dict[str, int]:
    """Width, depth and heads of a built encoder (the flavour's, or the run's model.dim/depth/heads overrides)."""
    blocks = encoder.blocks
    return {"dim": int(encoder.dim), "depth": len(blocks), "heads": int(blocks[0].attn.heads) if len(blocks) else 0}


def encoder_architecture(cfg: SSLConfig, encoder: nn.Module, source: str) -> dict[str, Any]:
    """The JSON-ready record of a run's encoder; `source` says where the weights came from (the run dir)."""
    dims = flavour_dims(encoder)
    build_kwargs = {**build_modality(cfg).encoder_kwargs(), **dims}
    return {
        "format": ARCHITECTURE_FORMAT,
        "encoder": cfg.model.encoder,
        "flavour": dims,
        "build_kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in build_kwargs.items()},
        "modality": cfg.modality.name,
        "input_name": INPUT_NAME,
        "input_shape": ["batch", *model_input_shape(cfg)],
        "output_name": OUTPUT_NAME,
        "output_shape": ["batch", int(encoder.embed_dim)],
        "config": {"modality": cfg.modality.model_dump(mode="json"), "model": cfg.model.model_dump(mode="json")},
        "source": source,
    }


def build_from_architecture(arch: dict[str, Any]) -> nn.Module:
    """A freshly initialised encoder of the recorded architecture (load the exported weights into it)."""
    if arch.get("format") != ARCHITECTURE_FORMAT:
        raise ArchitectureError(f"architecture format {arch.get('format')!r} is not {ARCHITECTURE_FORMAT!r}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in arch["build_kwargs"].items()}
    return build_encoder(arch["encoder"], **kwargs)


def architecture_path(exported: str | Path) -> Path:
    """`FILE.json` beside an exported `FILE`."""
    return Path(f"{exported}.json")


def write_architecture(exported: str | Path, arch: dict[str, Any]) -> Path:
    from distributed_ssl.util.atomic_files import atomic_write_text

    path = architecture_path(exported)
    atomic_write_text(path, json.dumps(arch, indent=2) + "\n")
    return path


def read_architecture(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ArchitectureError(f"architecture file not found: {path}")
    try:
        arch = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArchitectureError(f"architecture file {path} is not valid JSON: {exc}") from exc
    if not isinstance(arch, dict) or arch.get("format") != ARCHITECTURE_FORMAT:
        raise ArchitectureError(f"{path} is not a {ARCHITECTURE_FORMAT} file")
    return arch

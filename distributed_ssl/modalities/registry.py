"""Name → modality object. Each modality registers itself (`@register_modality`, modalities/base.py) in its own
module; importing the module below is the one line a new modality adds here."""

from __future__ import annotations

from distributed_ssl.modalities import audio, image, lidar  # noqa: F401  (each registers its modality)
from distributed_ssl.modalities.base import Modality, register_modality, registered_modalities

__all__ = ["Modality", "get_modality", "modality_names", "register_modality"]


def modality_names() -> list[str]:
    return sorted(registered_modalities())


def get_modality(name: str) -> Modality:
    modalities = registered_modalities()
    if name not in modalities:
        raise ValueError(f"unknown modality {name!r}; known: {', '.join(sorted(modalities))}")
    return modalities[name]()

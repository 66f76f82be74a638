"""Config → modality object. Each modality registers its class (`@register_modality`, modalities/base.py) in its
own module; importing the module below is the one line a new modality adds here."""

from __future__ import annotations

import inspect

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.modalities import audio, image, lidar  # noqa: F401  (each registers its modality)
from distributed_ssl.modalities.base import Modality, register_modality, registered_modalities

__all__ = ["Modality", "build_modality", "modality_names", "register_modality"]


def modality_names() -> list[str]:
    return sorted(registered_modalities())


def build_modality(cfg: SSLConfig) -> Modality:
    """The modality of `cfg`, given only the sections its class takes (see `MODALITY_PIECES`).

    The one place that picks a modality's pieces out of the whole config; build it once per process and hand
    the object on.
    """
    modalities = registered_modalities()
    name = cfg.modality.name
    if name not in modalities:
        raise ValueError(f"unknown modality {name!r}; known: {', '.join(sorted(modalities))}")
    cls = modalities[name]
    pieces = {"config": cfg.modality, "augment": cfg.augment, "mask": cfg.mask, "patch_size": cfg.model.patch_size}
    return cls(**{key: pieces[key] for key in inspect.signature(cls).parameters})

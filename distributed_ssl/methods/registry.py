"""Build a method (and its encoder) from the config; say what data-side views it needs.

Every method registers itself with `@register_method(name)` (methods/base.py) in its own module; importing the
module below is the one line a new method adds here.
"""

from __future__ import annotations

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.methods import byol, dino, jepa, mae, simclr  # noqa: F401  (each registers its method)
from distributed_ssl.methods.base import Method, registered_methods
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.modalities.view_spec import ViewSpec
from distributed_ssl.models.registry import build_encoder


def method_names() -> list[str]:
    return sorted(registered_methods())


def method_class(name: str) -> type[Method]:
    methods = registered_methods()
    if name not in methods:
        raise ValueError(f"unknown method {name!r} (method.name); known: {', '.join(sorted(methods))}")
    return methods[name]


def view_spec_for(cfg: SSLConfig) -> ViewSpec:
    return method_class(cfg.method.name).view_spec(cfg.method)


def build_encoder_for(cfg: SSLConfig):
    return build_encoder(cfg.model.encoder, dim=cfg.model.dim, depth=cfg.model.depth, heads=cfg.model.heads,
                         **build_modality(cfg).encoder_kwargs())


def build_method(cfg: SSLConfig) -> Method:
    return method_class(cfg.method.name).from_config(build_encoder_for(cfg), cfg.method)

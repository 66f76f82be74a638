"""SSL methods: encoder(s) + heads + loss, with one interface the engine drives."""

from distributed_ssl.methods.registry import build_method, method_names, view_spec_for

__all__ = ["build_method", "method_names", "view_spec_for"]

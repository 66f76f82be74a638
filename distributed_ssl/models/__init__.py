"""Encoders and heads. Model code never wraps itself for distribution; engine/ does that."""

from distributed_ssl.models.registry import build_encoder, encoder_names

__all__ = ["build_encoder", "encoder_names"]

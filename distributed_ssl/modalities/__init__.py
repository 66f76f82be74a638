"""Modalities: decode records, make augmented views and masks, on the CPU side of the pipeline."""

from distributed_ssl.modalities.registry import build_modality

__all__ = ["build_modality"]

"""Modalities: decode records, make augmented views and masks, on the CPU side of the pipeline."""

from distributed_ssl.modalities.registry import get_modality

__all__ = ["get_modality"]

"""The shape of one model-ready sample of a modality: what an encoder reads, and what an exported encoder takes."""

from __future__ import annotations

from distributed_ssl.config.modality_configs import MODALITY_CONFIGS
from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.modalities.registry import build_modality

MODALITY_NAMES = tuple(MODALITY_CONFIGS)  # the values `modality.name` accepts


def model_input_shape(cfg: SSLConfig) -> tuple[int, ...]:
    """One sample, without the batch axis: image [C, S, S]; audio log-mel [1, n_mels', frames']; lidar point
    patches [G, 1 + K, 4] (row 0 of each patch: its centre)."""
    kwargs = build_modality(cfg).encoder_kwargs()
    if "input_size" in kwargs:  # a 2-D grid that a ViT cuts into patches
        return (kwargs["in_channels"], *kwargs["input_size"])
    return (kwargs["num_groups"], 1 + kwargs["group_size"], kwargs["point_channels"])


def describe_input(cfg: SSLConfig) -> str:
    """`3×32×32 image`, in words a person reads in `dssl models` and in export reports."""
    kind = {"image": "image", "audio": "log-mel", "lidar": "point patches"}[cfg.modality.name]
    return "×".join(str(n) for n in model_input_shape(cfg)) + " " + kind

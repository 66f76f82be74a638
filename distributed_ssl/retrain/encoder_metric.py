"""The promotion metric, measured the same way for the new encoder and the champion.

Both are probed here, on this machine, on the current `data.eval`, rather than comparing the new run's
in-training number with a value stored months ago: the two numbers then differ only in the weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.evaluation.knn_probe import knn_probe
from distributed_ssl.evaluation.labeled_set import LabeledSplit
from distributed_ssl.methods.registry import build_encoder_for
from distributed_ssl.util import storage
from distributed_ssl.util.encoder_file import load_encoder_state


def probe_weights(weights: str | Path, cfg: SSLConfig, splits: dict[str, LabeledSplit]) -> float:
    """kNN top-1 of the encoder in `weights` (an encoder.pt state dict, loaded tensors-only; a path or URI)."""
    encoder = build_encoder_for(cfg)
    local, temporary = storage.local_copy(str(weights))
    try:
        state = load_encoder_state(local)
    finally:
        if temporary:
            shutil.rmtree(local.parent, ignore_errors=True)
    try:
        encoder.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{weights} does not fit model.encoder={cfg.model.encoder}: {exc}") from None
    with torch.no_grad():
        return float(knn_probe(encoder.eval().embed, splits, cfg.eval))

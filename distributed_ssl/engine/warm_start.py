"""`model.init_from`: start training from an earlier encoder instead of random weights.

Scheduled retraining warm-starts from the registry's champion so that each pass refines the production encoder
on the new data rather than relearning it from scratch. Only the encoder is loaded: heads and projectors are
method-specific and cheap to relearn.
"""

from __future__ import annotations

import shutil

from torch import nn

from distributed_ssl.util import storage
from distributed_ssl.util.encoder_file import load_encoder_state


def load_encoder_weights(method: nn.Module, path: str) -> None:
    """Load an `encoder.pt` state dict (tensors only: `weights_only=True`) into `method.encoder`; `path` may be
    a URI."""
    try:
        weights, temporary = storage.local_copy(path)
    except FileNotFoundError:
        weights, temporary = None, False
    if weights is None or not weights.is_file():
        raise FileNotFoundError(f"model.init_from={path}: no such file (it must be readable on every worker)")
    try:
        state = load_encoder_state(weights)
    finally:
        if temporary:
            shutil.rmtree(weights.parent, ignore_errors=True)
    try:
        method.encoder.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"model.init_from={path} does not fit this model.encoder (same flavour, patch size and "
                         f"width are needed): {exc}") from None

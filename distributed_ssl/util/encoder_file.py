"""Reading `encoder.pt`: a plain state dict of tensors, so it is always loaded with `weights_only=True`.

An encoder file travels (model registry, `model.init_from`, `dssl eval` of someone else's run): full unpickling
would run whatever code a changed file holds. `weights_only=True` rebuilds only tensors and containers and
refuses anything else, before any of it runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch


class EncoderFileError(ValueError):
    """The file is not a plain tensor state dict (refused unread) or is not a state dict at all."""


def load_encoder_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in `path`, loaded tensors-only; raises `EncoderFileError` naming the file otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise EncoderFileError(f"{path} is not a plain tensor state dict (it holds other Python objects, which "
                               f"are never unpickled): {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EncoderFileError(f"{path} does not hold an encoder state dict (name -> tensor)")
    return state

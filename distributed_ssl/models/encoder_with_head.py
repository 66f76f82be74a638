"""An encoder followed by a head, as one module: what an EMA teacher copies (BYOL's target, DINO's teacher)."""

from __future__ import annotations

import torch
from torch import nn


class EncoderWithHead(nn.Module):
    """`forward(x) = head(encoder.embed(x))`; `embed(x)` is the encoder's, so a teacher can be probed too.

    Methods keep their encoder and head as separate submodules and build this wrapper only to hand the pair to
    an `EMATeacher` (which deep-copies it), so DeepSpeed never sees one module twice in the tree.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed(x)

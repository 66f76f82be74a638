"""AdamW parameter groups: no weight decay on biases, norms, tokens and embeddings' 1-D parameters."""

from __future__ import annotations

from torch import nn


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith("token") else decay).append(param)
    # `decays` says which group a weight-decay schedule (or a changed optim.weight_decay) applies to
    return [{"params": decay, "weight_decay": weight_decay, "decays": True},
            {"params": no_decay, "weight_decay": 0.0, "decays": False}]

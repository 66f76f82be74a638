"""safetensors export: the encoder's weights (no code, no pickle); the architecture JSON rebuilds the module."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distributed_ssl.export.architecture import build_from_architecture
from distributed_ssl.export.embedding_model import EmbeddingModel

ARCHITECTURE_KEY = "dssl_architecture"  # header metadata key: the file alone is enough to rebuild


def write_safetensors(model: EmbeddingModel, example: torch.Tensor, path: Path, arch: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().clone().contiguous() for k, v in model.encoder.state_dict().items()}
    save_file(tensors, str(path), metadata={ARCHITECTURE_KEY: json.dumps(arch)})


def load_safetensors(path: Path, arch: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Rebuild the encoder from `arch`, load the weights strictly, and embed in torch."""
    from safetensors.torch import load_file

    encoder = build_from_architecture(arch)
    encoder.load_state_dict(load_file(str(path)), strict=True)
    model = EmbeddingModel(encoder).eval()

    def run(inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(inputs)).numpy()

    return run

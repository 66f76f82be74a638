"""TorchScript export: a traced embedding path that runs with torch alone (`torch.jit.load`), no dssl code.

torch marks `torch.jit` deprecated in favour of `torch.export`; TorchScript is still what many C++ and mobile
runtimes load, so it stays a format here, and every export is checked against the eager encoder.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distributed_ssl.export.embedding_model import EmbeddingModel

ARCHITECTURE_FILE = "dssl_architecture.json"  # stored inside the archive as an extra file


def write_torchscript(model: EmbeddingModel, example: torch.Tensor, path: Path, arch: dict[str, Any]) -> None:
    with warnings.catch_warnings():  # the deprecation notice, and tracer notes on shape-derived Python values
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (example,))
    torch.jit.save(traced, str(path), _extra_files={ARCHITECTURE_FILE: json.dumps(arch)})


def load_torchscript(path: Path, arch: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(inputs)).numpy()

    return run

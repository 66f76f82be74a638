"""`dssl export RUN_DIR`: write a finished run's encoder in a deployable format and prove it embeds like torch.

The exported model is the `embed` path (model-ready inputs [B, ...] → embeddings [B, D]); beside it goes
`FILE.json`, the architecture record (see architecture.py). The check runs the exported file through its own
runtime (onnxruntime, a rebuilt module with the safetensors weights, `torch.jit.load`) on real records of the run's
data and compares with the torch encoder: the largest absolute difference must stay within the tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distributed_ssl.export.architecture import encoder_architecture, write_architecture
from distributed_ssl.export.embedding_model import EmbeddingModel, cpu_embedding_model
from distributed_ssl.export.example_inputs import example_inputs
from distributed_ssl.export.onnx_format import load_onnx, write_onnx
from distributed_ssl.export.safetensors_format import load_safetensors, write_safetensors
from distributed_ssl.export.torchscript_format import load_torchscript, write_torchscript

Writer = Callable[[EmbeddingModel, torch.Tensor, Path, dict[str, Any]], None]
Loader = Callable[[Path, dict[str, Any]], Callable[[np.ndarray], np.ndarray]]

FORMATS: dict[str, tuple[Writer, Loader, str]] = {  # name → (write, load, default file name in the run dir)
    "onnx": (write_onnx, load_onnx, "encoder.onnx"),
    "safetensors": (write_safetensors, load_safetensors, "encoder.safetensors"),
    "torchscript": (write_torchscript, load_torchscript, "encoder.torchscript.pt"),
}
FP32_TOLERANCE = 1e-4


class ExportError(ValueError):
    """A bad export request (format, record count); the message names the bad value."""


class ExportMismatchError(RuntimeError):
    """The exported model's embeddings differ from the torch encoder's by more than the tolerance."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    architecture_path: Path
    format: str
    encoder: str
    input_shape: list
    embedding_dim: int
    checked_on: str  # shard folder of the check records
    records: int
    max_abs_diff: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def max_abs_difference(run: Callable[[np.ndarray], np.ndarray], model: EmbeddingModel,
                       inputs: torch.Tensor) -> float:
    """Largest |exported − torch| over a batch of embeddings; a shape mismatch is an error, not a number."""
    with torch.no_grad():
        expected = model(inputs).numpy()
    got = np.asarray(run(inputs.numpy()))
    if got.shape != expected.shape:
        raise ExportMismatchError(f"the exported model returned shape {got.shape}, the encoder {expected.shape}")
    return float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max())


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None, records: int = 8,
               tolerance: float = FP32_TOLERANCE) -> ExportReport:
    """Export RUN_DIR's encoder as `fmt` to `out` (default RUN_DIR/encoder.FORMAT), then check it."""
    from distributed_ssl.evaluation.evaluate_run import load_encoder

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    if records < 2:
        raise ExportError(f"the check needs at least 2 records (the batch axis stays dynamic), got {records}")
    write, load, default_name = FORMATS[fmt]
    cfg, encoder = load_encoder(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / default_name
    path.parent.mkdir(parents=True, exist_ok=True)
    model = cpu_embedding_model(encoder)
    batch = example_inputs(cfg, records)
    if len(batch.inputs) < 2:
        raise ExportError(f"{batch.source} holds {len(batch.inputs)} record; the check needs at least 2")
    arch = encoder_architecture(cfg, model.encoder, source=str(run_dir))
    arch["file"], arch["export_format"] = path.name, fmt
    write(model, batch.inputs[:2], path, arch)  # traced on 2 records, checked on all: the batch axis is free
    arch_path = write_architecture(path, arch)
    diff = max_abs_difference(load(path, arch), model, batch.inputs)
    return ExportReport(path, arch_path, fmt, cfg.model.encoder, arch["input_shape"], arch["output_shape"][1],
                        batch.source, len(batch.inputs), diff, tolerance)

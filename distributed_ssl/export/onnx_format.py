"""ONNX export of the embedding path, batch axis dynamic, the architecture JSON in the model's metadata."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distributed_ssl.export.architecture import INPUT_NAME, OUTPUT_NAME
from distributed_ssl.export.embedding_model import EmbeddingModel

ARCHITECTURE_KEY = "dssl_architecture"  # metadata_props key


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter prints its progress, its graph passes log at INFO and it warns about absent torchvision ops;
    a person wants the result, which the check that follows proves."""
    names = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._export")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def write_onnx(model: EmbeddingModel, example: torch.Tensor, path: Path, arch: dict[str, Any]) -> None:
    """Trace `model` on `example` (batch ≥ 2, so the batch axis stays symbolic) with the dynamo exporter."""
    import onnx

    batch = torch.export.Dim("batch")
    with _quiet_exporter():
        torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_shapes=({0: batch},), dynamo=True, verbose=False)
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = ARCHITECTURE_KEY, json.dumps(arch)
    onnx.save(proto, str(path))


def load_onnx(path: Path, arch: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """An onnxruntime CPU session as `inputs → embeddings`."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda inputs: session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0]

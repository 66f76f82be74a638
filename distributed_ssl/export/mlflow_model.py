"""Log an encoder to MLflow as a model: inputs → embeddings, with a signature and an input example.

The pytorch flavour's `pt2` format (`torch.export`) stores a traced graph, not a pickle, so
`mlflow.pyfunc.load_model(uri).predict(batch)` needs torch only (no dssl code) and loading runs no arbitrary code.
The model is saved locally and uploaded as run artifacts through an `MlflowClient`: no global tracking URI, no
active run, and the run's status is left as it is, so rank 0 may call this while its training run is still open.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distributed_ssl.export.embedding_model import cpu_embedding_model

MODEL_ARTIFACT = "encoder_model"


def log_encoder_model(run_id: str, tracking_uri: str, encoder: nn.Module, example: torch.Tensor | np.ndarray,
                      artifact_path: str = MODEL_ARTIFACT) -> str:
    """Log `encoder`'s embed path under `artifact_path` of run `run_id`; returns the model URI (`runs:/...`).

    `example` is a batch of model-ready inputs (at least 2, so the batch axis of the signature and graph stays
    dynamic), e.g. a few `eval_inputs` of the run's eval set. `encoder` must hold full weights (under ZeRO-3,
    gather them first); a CPU fp32 copy is logged and the caller's module is not changed.
    """
    import mlflow.pytorch
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    batch = np.ascontiguousarray(example.detach().cpu().numpy() if torch.is_tensor(example) else example,
                                 dtype=np.float32)
    if batch.ndim < 2 or batch.shape[0] < 2:
        raise ValueError(f"example must be a batch of at least 2 model-ready inputs, got shape {batch.shape}")
    model = cpu_embedding_model(encoder)
    with torch.no_grad():
        embeddings = model(torch.from_numpy(batch)).numpy()
    signature = infer_signature(batch, embeddings)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / artifact_path
        mlflow.pytorch.save_model(model, str(local), signature=signature, input_example=batch,
                                  serialization_format="pt2",
                                  pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
        MlflowClient(tracking_uri).log_artifacts(run_id, str(local), artifact_path)
    return f"runs:/{run_id}/{artifact_path}"

"""What rank 0 leaves beside the metrics: the views preview of the first batch and the trained encoder (the
`encoder.pt` file in the run dir, an MLflow artifact, and an MLflow model that embeds without this package)."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import torch

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.methods.registry import build_encoder_for
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.tracking.mlflow_tracking import RunLogger
from distributed_ssl.util.run_dir import ENCODER_FILE, RunDir

PREVIEW_FILE = "views.png"

log = logging.getLogger("distributed_ssl.train")


def log_preview(batch: dict[str, torch.Tensor], cfg: SSLConfig, logger: RunLogger, run_dir: RunDir) -> None:
    """A PNG of the first batch's views and masks (RUN_DIR/views.png and MLflow), so a person can see what the
    model is trained on."""
    try:
        arrays = {k: v.numpy() for k, v in batch.items()}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, PREVIEW_FILE)
            build_modality(cfg).preview(arrays, path)
            run_dir.upload(path, PREVIEW_FILE)
            logger.artifact(path)
    except Exception as exc:  # a preview must never stop training
        log.warning("could not write the views preview: %s", exc)


def save_encoder(state: dict[str, torch.Tensor], cfg: SSLConfig, run_dir: RunDir, logger: RunLogger | None,
                 tracking_uri: str | None, eval_splits: dict | None) -> None:
    """RUN_DIR/encoder.pt, and with a logger the same file as an artifact and (`tracking.log_model`) a model."""
    run_dir.save_torch(ENCODER_FILE, state)
    if logger is None:
        return
    with run_dir.local_file(ENCODER_FILE) as path:
        logger.artifact(path)
    if cfg.tracking.log_model and tracking_uri:
        log_encoder_model(cfg, state, eval_splits, tracking_uri, logger.run_id)


def log_encoder_model(cfg: SSLConfig, state: dict[str, torch.Tensor], eval_splits: dict | None, tracking_uri: str,
                      run_id: str) -> None:
    """The trained encoder as an MLflow model (inputs → embeddings, signature, input example from the eval set),
    so `mlflow.pyfunc.load_model("runs:/RUN/encoder_model")` embeds without this package's training code."""
    try:
        from distributed_ssl.export.example_inputs import example_inputs
        from distributed_ssl.export.mlflow_model import log_encoder_model as log_model

        encoder = build_encoder_for(cfg)
        encoder.load_state_dict(state)
        example: Any
        if eval_splits:
            example = next(iter(eval_splits.values())).inputs[:8]
        else:
            example = example_inputs(cfg).inputs
        log_model(run_id, tracking_uri, encoder.eval(), example)
    except Exception as exc:  # the encoder.pt artifact is already logged; the model is a convenience on top
        log.warning("could not log the encoder as an MLflow model: %s", str(exc).splitlines()[0][:300])

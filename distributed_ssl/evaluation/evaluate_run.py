"""`dssl eval RUN_DIR --data DIR`: probe a finished run's encoder on any labeled shard folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from distributed_ssl.config.loader import ConfigError, load_config
from distributed_ssl.evaluation.labeled_set import load_labeled
from distributed_ssl.evaluation.probe_suite import probe_encoder
from distributed_ssl.evaluation.raw_features import raw_feature_knn
from distributed_ssl.methods.registry import build_encoder_for
from distributed_ssl.util.encoder_file import load_encoder_state
from distributed_ssl.util.run_dir import CONFIG_FILE, ENCODER_FILE, RunDir


def load_encoder(location: str | Path):
    """Rebuild a run's encoder from its saved config and load `encoder.pt` (tensors only, no pickle); the run
    dir may be a URI."""
    run_dir = RunDir(location)
    if not run_dir.exists(CONFIG_FILE) or not run_dir.exists(ENCODER_FILE):
        raise ConfigError(f"{run_dir.uri} is not a finished run: it needs {CONFIG_FILE} and {ENCODER_FILE}")
    cfg = load_config(run_dir.child_uri(CONFIG_FILE))
    encoder = build_encoder_for(cfg)
    with run_dir.local_file(ENCODER_FILE) as weights:
        encoder.load_state_dict(load_encoder_state(weights))
    return cfg, encoder.eval()


def evaluate_run(run_dir: str | Path, data: str) -> dict[str, Any]:
    cfg, encoder = load_encoder(run_dir)
    splits = load_labeled(data, cfg)
    torch.manual_seed(cfg.train.seed)
    random_encoder = build_encoder_for(cfg).eval()
    trained, baseline = probe_encoder(encoder.embed, splits, cfg.eval), probe_encoder(random_encoder.embed, splits,
                                                                                       cfg.eval)
    return {
        "run_dir": str(run_dir), "data": data, "method": cfg.method.name, "modality": cfg.modality.name,
        **trained.metrics(), "collapsed": trained.collapse.collapsed,
        "collapse_warning": trained.collapse.reason or None,
        "knn_top1_random_init": baseline.knn_top1, "linear_top1_random_init": baseline.linear_top1,
        "knn_top1_raw_features": raw_feature_knn(cfg.modality.name, splits, cfg.eval),
        "eval_records": sum(len(s.labels) for s in splits.values()),
    }

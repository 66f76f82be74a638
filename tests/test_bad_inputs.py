"""Bad configs and paths fail in `dssl train` before Ray or any worker starts, naming the key or the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from distributed_ssl.cli import main
from distributed_ssl.data.convert_image import convert_image_folder
from distributed_ssl.launch import trainer
from tests.conftest import tiny_overrides

RECIPE = str(Path(__file__).resolve().parents[1] / "jobs" / "configs" / "image_simclr.yaml")


@pytest.fixture
def no_workers(monkeypatch):
    """Any attempt to start or join Ray fails the test: every check below must come first."""
    def refuse(*_, **__):
        raise AssertionError("Ray was started for a run whose inputs are invalid")

    monkeypatch.setattr(trainer, "ensure_ray", refuse)


def _unlabeled_shards(tmp_path: Path) -> Path:
    src = tmp_path / "flat"
    src.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(src / f"{i}.png")
    convert_image_folder(src, str(tmp_path / "unlabeled"), val_fraction=0)
    return tmp_path / "unlabeled" / "train"


@pytest.mark.reliability(failure="a bad config or path: missing shard folder, too few records, unknown encoder, "
                                 "an encoder that does not fit the modality, eval set without labels, offload "
                                 "without ZeRO-3, an unknown method",
                         response="`dssl train` exits 2 before Ray or any worker starts; the message names the key "
                                  "or the file")
@pytest.mark.parametrize("extra, message", [
    ({"data.train": "/nonexistent/shards"}, "shard folder not found: /nonexistent/shards"),
    ({"scaling.num_workers": 64, "train.batch_size": 64}, "too few for scaling.num_workers=64"),
    ({"model.encoder": "vit_huge"}, "unknown encoder 'vit_huge' (model.encoder)"),
    ({"model.encoder": "point_tiny"}, "model.encoder=point_tiny"),
    ({"data.eval": "UNLABELED"}, "has no labels"),
    ({"deepspeed.offload_params": True, "deepspeed.zero_stage": 2}, "offload_params needs zero_stage 3"),
    ({"method.name": "swav"}, "method.name"),
])
def test_bad_inputs_fail_before_any_worker_starts(extra, message, digits, tmp_path, no_workers, capsys):
    if extra.get("data.eval") == "UNLABELED":
        extra = {"data.eval": str(_unlabeled_shards(tmp_path))}
    run_dir = tmp_path / "run"
    assert main(["train", RECIPE, *tiny_overrides(digits, run_dir, **extra)]) == 2
    assert message in capsys.readouterr().err
    assert not (run_dir / "run.json").exists()  # no MLflow run and no run state were created

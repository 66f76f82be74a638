"""Eval sets are decoded once per process for the same records and decoding settings, and again when either changes."""

from __future__ import annotations

import torch

from distributed_ssl.config import load_config
from distributed_ssl.data.sample_image import write_digits
from distributed_ssl.evaluation import labeled_set
from distributed_ssl.evaluation.labeled_set import load_labeled


def test_a_set_is_decoded_once_until_its_records_or_settings_change(tmp_path, monkeypatch):
    decoded: list[str] = []
    real = labeled_set._decode_split
    monkeypatch.setattr(labeled_set, "_decode_split", lambda uri, *a: decoded.append(uri) or real(uri, *a))
    monkeypatch.setattr(labeled_set, "_DECODED", {})
    cfg = load_config(None, ["model.encoder=vit_debug"])
    write_digits(str(tmp_path / "d"), seed=0)

    first = load_labeled(str(tmp_path / "d"), cfg)
    again = load_labeled(str(tmp_path / "d"), cfg)
    assert len(decoded) == 2 and again["val"] is first["val"]  # train and val once each

    bigger = load_config(None, ["model.encoder=vit_debug", "modality.image_size=48"])
    assert load_labeled(str(tmp_path / "d"), bigger)["val"].inputs.shape[-1] == 48 and len(decoded) == 4

    write_digits(str(tmp_path / "d"), seed=1)  # other records, same folder: a new manifest
    rewritten = load_labeled(str(tmp_path / "d"), cfg)
    assert len(decoded) == 6 and not torch.equal(rewritten["val"].labels, first["val"].labels)

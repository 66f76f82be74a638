"""`dssl models` lists every encoder, method and modality, with parameter counts that match the built models."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from distributed_ssl.cli import main
from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.methods.registry import method_names
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.models.registry import VIT_FLAVOURS, build_encoder, encoder_names


def built_parameters(name: str) -> int:
    modality = "image" if name in VIT_FLAVOURS else "lidar"
    cfg = SSLConfig.model_validate({"modality": {"name": modality}})
    encoder = build_encoder(name, **build_modality(cfg).encoder_kwargs())
    return sum(p.numel() for p in encoder.parameters())


@pytest.fixture(scope="module")
def out() -> str:
    """What `dssl models` prints (built once: it builds every encoder)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["models"]) == 0
    return buf.getvalue()


def test_models_lists_every_encoder_with_its_parameter_count(out):
    rows = {m.group(1): int(m.group(2).replace(",", ""))
            for m in re.finditer(r"^  (\w+)\s+(?:vit|point)\s+\d+\s+\d+\s+\d+\s+([\d,]+)  ", out, re.MULTILINE)}
    assert sorted(rows) == encoder_names()
    for name, count in rows.items():
        assert count == built_parameters(name), name
    assert rows["vit_tiny"] < rows["vit_small"] < rows["vit_base"]


def test_models_lists_every_method_and_modality(out):
    for name in method_names():
        assert re.search(rf"^  {name}\s+\d+ (strong|light) view", out, re.MULTILINE), name
    assert re.search(r"^  image\s+3×32×32 image", out, re.MULTILINE)
    assert re.search(r"^  audio\s+1×32×60 log-mel", out, re.MULTILINE)
    assert re.search(r"^  lidar\s+32×17×4 point patches", out, re.MULTILINE)
    assert "  dino         2 strong views + 4 local views" in out

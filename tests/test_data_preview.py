"""`dssl data inspect` writes a preview PNG of the right kind for every modality."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from distributed_ssl.cli import main
from distributed_ssl.preview.inspect import PREVIEW_COUNTS, write_preview
from distributed_ssl.preview.preview_audio import clip_log_mel
from distributed_ssl.preview.preview_lidar import cloud_points

# fraction of strongly coloured pixels: none for grey digits, most of a spectrogram page, the points of a scatter
MIN_COLOURFUL = {"image": 0.0, "audio": 0.15, "lidar": 0.02}
MAX_COLOURFUL = {"image": 0.01, "audio": 1.0, "lidar": 0.5}
EXPECTED_SIZE = {"image": (960, 1040), "audio": (1040, 570), "lidar": (1360, 440)}


@pytest.mark.parametrize("modality", ["image", "audio", "lidar"])
def test_inspect_writes_a_preview_for_every_modality(modality, sample_sets, tmp_path, capsys):
    out = tmp_path / f"{modality}.png"
    assert main(["data", "inspect", sample_sets[modality], "--preview", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"modality {modality}" in printed and f"preview: {out}" in printed and "labels (" in printed
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == EXPECTED_SIZE[modality]
        pixels = np.asarray(png.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 20  # a picture, not a blank page
    colourful = (pixels.max(axis=2) - pixels.min(axis=2) > 60).mean()  # magma / viridis vs grey digits
    assert MIN_COLOURFUL[modality] <= colourful <= MAX_COLOURFUL[modality], colourful


def test_audio_preview_is_the_training_log_mel(sample_sets):
    """The spectrogram drawn for a clip spans its whole length at 32 mel bands, peak +1 and floor −1."""
    import pyarrow.parquet as pq

    from distributed_ssl.config.modality_configs import AudioConfig
    from distributed_ssl.data.manifest import shard_paths

    row = pq.read_table(shard_paths(sample_sets["audio"] + "/train")[0]).slice(0, 1).to_pylist()[0]
    mel = clip_log_mel(row["audio"], row["format"], row["sample_rate"], AudioConfig())
    assert mel.shape == (32, 1 + round(row["duration"] * 16000) // 256)
    assert mel.max() == pytest.approx(1.0) and mel.min() == pytest.approx(-1.0)


def test_lidar_points_with_wrong_byte_count_name_the_record():
    with pytest.raises(ValueError, match="record 'scan-1'"):
        cloud_points(b"\0" * 20, 2, "scan-1")


def test_preview_counts_fit_one_page(sample_sets, tmp_path):
    path = write_preview(sample_sets["lidar"], str(tmp_path / "two.png"), count=2)
    assert Image.open(path).size == (680, 440)
    assert PREVIEW_COUNTS == {"image": 64, "audio": 12, "lidar": 4}

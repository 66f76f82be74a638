"""Audio shard preview: the log-mel spectrogram of each of the first clips, titled with its label and length.

The spectrograms are computed exactly as training computes them (`modalities/log_mel.py`, the default
`modality.*` settings: 16 kHz, n_fft 512, hop 256, 32 mel bands), over the whole clip rather than a 1 s crop,
so a person sees what the encoder is given.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from distributed_ssl.config.modality_configs import AudioConfig
from distributed_ssl.data.audio_io import read_audio_bytes, resample
from distributed_ssl.preview.preview_figure import label_name, new_figure, save_figure

AUDIO_COLUMNS = 4


def clip_log_mel(data: bytes, fmt: str, sample_rate: int, m: AudioConfig) -> np.ndarray:
    """One stored clip → its log-mel [n_mels, frames] in about [-1, 1] (peak +1, peak − 80 dB → −1)."""
    import torch

    # the training transform itself, so the preview cannot drift from what the encoder sees
    from distributed_ssl.modalities.log_mel import log_mel

    samples, rate = read_audio_bytes(data, fmt, sample_rate)
    wave = torch.from_numpy(np.ascontiguousarray(resample(samples, rate, m.sample_rate), dtype=np.float32))
    if wave.numel() < m.n_fft:  # the STFT's reflect padding needs at least one window
        wave = torch.nn.functional.pad(wave, (0, m.n_fft - wave.numel()))
    return log_mel(wave[None], m.sample_rate, m.n_fft, m.hop_length, m.n_mels, m.f_min, m.f_max)[0].numpy()


def write_audio_preview(table: pa.Table, classes: list[str], out_path: str) -> str:
    """Up to `len(table)` spectrograms, 4 per row: time in seconds across, mel band up, colour = level."""
    m = AudioConfig()
    rows_data = table.select(["audio", "format", "sample_rate", "label"]).to_pylist()
    rows = max(1, -(-len(rows_data) // AUDIO_COLUMNS))
    fig, axes = new_figure(rows, AUDIO_COLUMNS, (2.6, 1.9))
    for ax in axes.flat:
        ax.set_axis_off()
    image = None
    for ax, row in zip(axes.flat, rows_data, strict=False):
        mel = clip_log_mel(row["audio"], row["format"], int(row["sample_rate"]), m)
        seconds = mel.shape[1] * m.hop_length / m.sample_rate
        image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=-1, vmax=1,
                          extent=(0.0, seconds, 0, m.n_mels))
        ax.set_axis_on()
        ax.set_title(f"{label_name(row['label'], classes)} · {seconds:.2f} s", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("s", fontsize=6, labelpad=1)
        ax.set_ylabel("mel band", fontsize=6, labelpad=1)
    fig.tight_layout()
    if image is not None:
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, pad=0.01)
        bar.set_label("level (peak +1, peak − 80 dB −1)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    return save_figure(fig, out_path)

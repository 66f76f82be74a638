"""Audio modality: decode stored clips, augment waveforms, log-mel + SpecAugment, patch masks for a ViT.

The spectrogram is a one-channel image [B, 1, n_mels, frames] (Audio-MAE style), so the existing ViT encoder,
MAE decoder and patch masks serve audio unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.data.audio_io import AudioDecodeError, read_audio_bytes, resample
from distributed_ssl.modalities.audio_augment import crop_or_pad, spec_augment, strong_waveform
from distributed_ssl.modalities.base import register_modality
from distributed_ssl.modalities.image import RecordDecodeError
from distributed_ssl.modalities.log_mel import log_mel, num_frames
from distributed_ssl.modalities.masking import grid_masks
from distributed_ssl.modalities.preview_grid import save_view_grid
from distributed_ssl.modalities.view_spec import ViewSpec


def spectrogram_shape(cfg: SSLConfig) -> tuple[int, int]:
    """(n_mels, frames) fed to the encoder: frames are cut down to whole patches."""
    m, p = cfg.modality, cfg.model.patch_size
    frames = num_frames(clip_samples(cfg), m.hop_length)
    if m.n_mels < p or frames < p:
        raise ValueError(f"a {m.n_mels}×{frames} spectrogram is smaller than model.patch_size={p}")
    return m.n_mels - m.n_mels % p, frames - frames % p


def clip_samples(cfg: SSLConfig) -> int:
    return int(round(cfg.modality.clip_seconds * cfg.modality.sample_rate))


@register_modality("audio")
class AudioModality:
    record_columns = ["id", "audio", "format", "sample_rate"]

    def decode(self, batch: dict[str, np.ndarray], cfg: SSLConfig) -> torch.Tensor:
        """Stored clips → float [B, L] at `modality.sample_rate`, NaN after each clip's end.

        L is the batch's longest clip (at most `max_seconds`; longer clips are centre-cut), so variable-length
        clips travel as one tensor and the views can crop inside the real samples.
        """
        rate, limit = cfg.modality.sample_rate, int(round(cfg.modality.max_seconds * cfg.modality.sample_rate))
        clips = []
        for i, data in enumerate(batch["audio"]):
            try:
                samples, sr = read_audio_bytes(data, str(batch["format"][i]), int(batch["sample_rate"][i]))
            except AudioDecodeError as exc:
                rid = batch["id"][i] if "id" in batch else i
                raise RecordDecodeError(f"record {rid!r}: {exc}") from exc
            samples = resample(samples, sr, rate)
            if len(samples) > limit:
                start = (len(samples) - limit) // 2
                samples = samples[start:start + limit]
            clips.append(samples)
        out = np.full((len(clips), max(1, max(len(c) for c in clips))), np.nan, dtype=np.float32)
        for i, c in enumerate(clips):
            out[i, :len(c)] = c
        return torch.from_numpy(out)

    def _spectrogram(self, wave: torch.Tensor, cfg: SSLConfig) -> torch.Tensor:
        """Log-mel of [B, samples] cut to whole patches: [B, n_mels', frames'] (global and local views alike)."""
        m, p = cfg.modality, cfg.model.patch_size
        h, _ = spectrogram_shape(cfg)
        frames = num_frames(wave.shape[1], m.hop_length)
        spec = log_mel(wave, m.sample_rate, m.n_fft, m.hop_length, m.n_mels, m.f_min, m.f_max)
        return spec[:, :h, :frames - frames % p]

    def local_samples(self, cfg: SSLConfig, spec: ViewSpec) -> int:
        """Length of a local segment: `spec.local_size` of the clip, at least one patch of frames."""
        p, hop = cfg.model.patch_size, cfg.modality.hop_length
        return max(int(round(clip_samples(cfg) * spec.local_size)), p * hop)

    def make_views(self, raw: torch.Tensor, spec: ViewSpec, cfg: SSLConfig,
                   gen: torch.Generator) -> dict[str, np.ndarray]:
        a = cfg.augment
        out: dict[str, np.ndarray] = {}
        for v in range(spec.num_views):
            if spec.augment == "strong":
                wave = strong_waveform(raw, clip_samples(cfg), cfg.modality.sample_rate, a, gen)
                mel = spec_augment(self._spectrogram(wave, cfg), a.specaug_masks, a.specaug_time_width,
                                   a.specaug_freq_width, gen)
            elif spec.augment == "light":  # MAE: a random crop only; patch masking is its augmentation
                mel = self._spectrogram(crop_or_pad(raw, clip_samples(cfg), gen), cfg)
            else:
                mel = self._spectrogram(crop_or_pad(raw, clip_samples(cfg), None), cfg)
            out[f"view_{v}"] = mel.unsqueeze(1).numpy().astype(np.float32)
        for v in range(spec.num_local_views):  # short segments; their band widths shrink with them
            length = self.local_samples(cfg, spec)
            wave = strong_waveform(raw, length, cfg.modality.sample_rate, a, gen)
            mel = spec_augment(self._spectrogram(wave, cfg), a.specaug_masks,
                               int(round(a.specaug_time_width * spec.local_size)), a.specaug_freq_width, gen)
            out[f"local_{v}"] = mel.unsqueeze(1).numpy().astype(np.float32)
        if spec.mask:
            h, w = spectrogram_shape(cfg)
            grid = (h // cfg.model.patch_size, w // cfg.model.patch_size)
            out.update(grid_masks(spec, raw.shape[0], grid, cfg.mask, gen))
        return out

    def eval_inputs(self, raw: torch.Tensor, cfg: SSLConfig) -> torch.Tensor:
        """The centred clip, no augmentation."""
        return self._spectrogram(crop_or_pad(raw, clip_samples(cfg), None), cfg).unsqueeze(1)

    def num_patches(self, cfg: SSLConfig) -> int:
        h, w = spectrogram_shape(cfg)
        return (h // cfg.model.patch_size) * (w // cfg.model.patch_size)

    def encoder_kwargs(self, cfg: SSLConfig) -> dict[str, Any]:
        return {"input_size": spectrogram_shape(cfg), "in_channels": 1, "patch_size": cfg.model.patch_size}

    def preview(self, batch: dict[str, np.ndarray], cfg: SSLConfig, path: str) -> None:
        """Spectrograms: one row per clip, columns = views (and the first view with hidden patches blank)."""
        p = cfg.model.patch_size
        h, w = spectrogram_shape(cfg)

        def hide(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
            img[mask.reshape(h // p, w // p).repeat(p, 0).repeat(p, 1)] = np.nan
            return img

        save_view_grid(batch, path, (2.6, 1.4), to_image=lambda view: view[0], hide_patches=hide,
                       draw=lambda ax, img: ax.imshow(img, origin="lower", aspect="auto", cmap="magma", vmin=-1,
                                                      vmax=1))

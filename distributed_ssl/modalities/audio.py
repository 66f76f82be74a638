"""Audio modality: decode stored clips, augment waveforms, log-mel + SpecAugment, patch masks for a ViT.

The spectrogram is a one-channel image [B, 1, n_mels, frames] (Audio-MAE style), so the existing ViT encoder,
MAE decoder and patch masks serve audio unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distributed_ssl.config.method_configs import MaskConfig
from distributed_ssl.config.modality_configs import AudioAugmentConfig, AudioConfig
from distributed_ssl.data.audio_io import AudioDecodeError, read_audio_bytes, resample
from distributed_ssl.modalities.audio_augment import crop_or_pad, spec_augment, strong_waveform
from distributed_ssl.modalities.base import register_modality
from distributed_ssl.modalities.decode_errors import RecordDecodeError
from distributed_ssl.modalities.log_mel import log_mel, num_frames
from distributed_ssl.modalities.masking import grid_masks
from distributed_ssl.modalities.preview_grid import save_view_grid
from distributed_ssl.modalities.view_spec import ViewSpec


def spectrogram_shape(config: AudioConfig, patch_size: int) -> tuple[int, int]:
    """(n_mels, frames) fed to the encoder: frames are cut down to whole patches."""
    m, p = config, patch_size
    frames = num_frames(clip_samples(config), m.hop_length)
    if m.n_mels < p or frames < p:
        raise ValueError(f"a {m.n_mels}×{frames} spectrogram is smaller than model.patch_size={p}")
    return m.n_mels - m.n_mels % p, frames - frames % p


def clip_samples(config: AudioConfig) -> int:
    return int(round(config.clip_seconds * config.sample_rate))


@register_modality("audio")
@dataclass(frozen=True)
class AudioModality:
    """Reads `modality.*` (`config`), `augment.*`, the method's `mask` and `model.patch_size`."""

    config: AudioConfig
    augment: AudioAugmentConfig
    mask: MaskConfig
    patch_size: int
    record_columns = ["id", "audio", "format", "sample_rate"]

    def decode(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """Stored clips → float [B, L] at `modality.sample_rate`, NaN after each clip's end.

        L is the batch's longest clip (at most `max_seconds`; longer clips are centre-cut), so variable-length
        clips travel as one tensor and the views can crop inside the real samples.
        """
        rate, limit = self.config.sample_rate, int(round(self.config.max_seconds * self.config.sample_rate))
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

    def _spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel of [B, samples] cut to whole patches: [B, n_mels', frames'] (global and local views alike)."""
        m, p = self.config, self.patch_size
        h, _ = spectrogram_shape(m, p)
        frames = num_frames(wave.shape[1], m.hop_length)
        spec = log_mel(wave, m.sample_rate, m.n_fft, m.hop_length, m.n_mels, m.f_min, m.f_max)
        return spec[:, :h, :frames - frames % p]

    def local_samples(self, spec: ViewSpec) -> int:
        """Length of a local segment: `spec.local_size` of the clip, at least one patch of frames."""
        p, hop = self.patch_size, self.config.hop_length
        return max(int(round(clip_samples(self.config) * spec.local_size)), p * hop)

    def make_views(self, raw: torch.Tensor, spec: ViewSpec, gen: torch.Generator) -> dict[str, np.ndarray]:
        a, clip = self.augment, clip_samples(self.config)
        out: dict[str, np.ndarray] = {}
        for v in range(spec.num_views):
            if spec.augment == "strong":
                wave = strong_waveform(raw, clip, self.config.sample_rate, a, gen)
                mel = spec_augment(self._spectrogram(wave), a.specaug_masks, a.specaug_time_width,
                                   a.specaug_freq_width, gen)
            elif spec.augment == "light":  # MAE: a random crop only; patch masking is its augmentation
                mel = self._spectrogram(crop_or_pad(raw, clip, gen))
            else:
                mel = self._spectrogram(crop_or_pad(raw, clip, None))
            out[f"view_{v}"] = mel.unsqueeze(1).numpy().astype(np.float32)
        for v in range(spec.num_local_views):  # short segments; their band widths shrink with them
            length = self.local_samples(spec)
            wave = strong_waveform(raw, length, self.config.sample_rate, a, gen)
            mel = spec_augment(self._spectrogram(wave), a.specaug_masks,
                               int(round(a.specaug_time_width * spec.local_size)), a.specaug_freq_width, gen)
            out[f"local_{v}"] = mel.unsqueeze(1).numpy().astype(np.float32)
        if spec.mask:
            h, w = spectrogram_shape(self.config, self.patch_size)
            grid = (h // self.patch_size, w // self.patch_size)
            out.update(grid_masks(spec, raw.shape[0], grid, self.mask, gen))
        return out

    def eval_inputs(self, raw: torch.Tensor) -> torch.Tensor:
        """The centred clip, no augmentation."""
        return self._spectrogram(crop_or_pad(raw, clip_samples(self.config), None)).unsqueeze(1)

    def num_patches(self) -> int:
        h, w = spectrogram_shape(self.config, self.patch_size)
        return (h // self.patch_size) * (w // self.patch_size)

    def encoder_kwargs(self) -> dict[str, Any]:
        return {"input_size": spectrogram_shape(self.config, self.patch_size), "in_channels": 1,
                "patch_size": self.patch_size, "pool_rows": self.config.pooling == "bands"}

    def preview(self, batch: dict[str, np.ndarray], path: str) -> None:
        """Spectrograms: one row per clip, columns = views (and the first view with hidden patches blank)."""
        p = self.patch_size
        h, w = spectrogram_shape(self.config, p)

        def hide(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
            img[mask.reshape(h // p, w // p).repeat(p, 0).repeat(p, 1)] = np.nan
            return img

        save_view_grid(batch, path, (2.6, 1.4), to_image=lambda view: view[0], hide_patches=hide,
                       draw=lambda ax, img: ax.imshow(img, origin="lower", aspect="auto", cmap="magma", vmin=-1,
                                                      vmax=1))

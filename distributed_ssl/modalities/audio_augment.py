"""Batched waveform and spectrogram augmentations for audio views; every op works on the whole batch at once.

Waveforms arrive as [B, L] with NaN after each clip's end (see `AudioModality.decode`), so clips of different
lengths share one tensor and a crop never lands in padding unless the clip is shorter than the view.
"""

from __future__ import annotations

import torch

from distributed_ssl.config.modality_configs import AudioAugmentConfig


def clip_lengths(wave: torch.Tensor) -> torch.Tensor:
    """Samples before the NaN padding, per row."""
    return (~torch.isnan(wave)).sum(dim=1)


def crop_or_pad(wave: torch.Tensor, length: int, gen: torch.Generator | None) -> torch.Tensor:
    """[B, L] (NaN-padded) → [B, length]. Longer clips: a random window (centred without `gen`);
    shorter clips: placed at a random offset (centred without `gen`) in silence."""
    b, total = wave.shape
    lengths = clip_lengths(wave)
    slack = (lengths - length).abs()
    if gen is None:
        offset = slack // 2
    else:
        offset = (torch.rand(b, generator=gen) * (slack + 1)).long().clamp(max=slack)
    pos = torch.arange(length).unsqueeze(0)
    # crop: read from the clip at offset + pos; pad: read from the clip at pos − offset (outside → silence)
    src = torch.where((lengths >= length).unsqueeze(1), pos + offset.unsqueeze(1), pos - offset.unsqueeze(1))
    valid = (src >= 0) & (src < lengths.unsqueeze(1))
    out = torch.gather(torch.nan_to_num(wave, nan=0.0), 1, src.clamp(0, total - 1))
    return torch.where(valid, out, torch.zeros(()))


def random_gain(wave: torch.Tensor, max_db: float, gen: torch.Generator) -> torch.Tensor:
    if max_db <= 0:
        return wave
    db = (torch.rand(wave.shape[0], 1, generator=gen) * 2 - 1) * max_db
    return wave * 10.0 ** (db / 20.0)


def random_time_shift(wave: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Circular shift by up to ±max_shift samples per clip (a gather, not a per-row roll)."""
    if max_shift <= 0:
        return wave
    b, n = wave.shape
    shift = torch.randint(-max_shift, max_shift + 1, (b, 1), generator=gen)
    idx = (torch.arange(n).unsqueeze(0) - shift) % n
    return torch.gather(wave, 1, idx)


def mix_at_snr(wave: torch.Tensor, prob: float, snr_db: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """With `prob`, add another clip of the batch scaled so the original is `snr_db` louder (RMS ratio)."""
    b = wave.shape[0]
    if prob <= 0 or b < 2:
        return wave
    partner = (torch.arange(b) + torch.randint(1, b, (b,), generator=gen)) % b  # never the clip itself
    other = wave[partner]
    snr = snr_db[0] + (snr_db[1] - snr_db[0]) * torch.rand(b, 1, generator=gen)
    rms = wave.pow(2).mean(dim=1, keepdim=True).sqrt()
    rms_other = other.pow(2).mean(dim=1, keepdim=True).sqrt().clamp(min=1e-8)
    scale = rms / rms_other / 10.0 ** (snr / 20.0)
    apply = (torch.rand(b, 1, generator=gen) < prob).float()
    return wave + apply * scale * other


def spec_augment(spec: torch.Tensor, masks: int, time_width: int, freq_width: int,
                 gen: torch.Generator, fill: float = 0.0) -> torch.Tensor:
    """SpecAugment (Park et al. 2019): `masks` time and `masks` frequency bands per example set to `fill`.

    spec [B, M, T]; each band's width is uniform in [0, width], its start uniform over the axis.
    """
    b, m, t = spec.shape
    hidden = torch.zeros(b, m, t, dtype=torch.bool)
    for axis, size, width in ((2, t, time_width), (1, m, freq_width)):
        if width <= 0:
            continue
        for _ in range(masks):
            w = torch.randint(0, min(width, size) + 1, (b, 1), generator=gen)
            start = (torch.rand(b, 1, generator=gen) * (size - w + 1)).long()
            pos = torch.arange(size).unsqueeze(0)
            band = (pos >= start) & (pos < start + w)  # [B, size]
            hidden |= band.unsqueeze(1) if axis == 2 else band.unsqueeze(2)
    return spec.masked_fill(hidden, fill)


def strong_waveform(wave: torch.Tensor, clip_samples: int, sample_rate: int, cfg: AudioAugmentConfig,
                    gen: torch.Generator) -> torch.Tensor:
    """Crop/pad, gain, time shift, mixing: the waveform half of the SimCLR audio chain."""
    x = crop_or_pad(wave, clip_samples, gen)
    x = random_gain(x, cfg.audio_gain_db, gen)
    x = random_time_shift(x, int(cfg.audio_shift_seconds * sample_rate), gen)
    return mix_at_snr(x, cfg.audio_mix_prob, (cfg.audio_mix_snr_min_db, cfg.audio_mix_snr_max_db), gen)

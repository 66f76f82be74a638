"""Batched log-mel spectrograms in torch: Hann-window STFT, an HTK mel filterbank, decibels relative to the peak.

Written here rather than taken from torchaudio so the audio path needs only torch; the test checks it against an
explicit DFT and filterbank in numpy.
"""

from __future__ import annotations

import functools

import torch

TOP_DB = 80.0  # quieter than peak − 80 dB is floor: silence and dither all look the same


def hz_to_mel(hz: torch.Tensor | float) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """[n_fft // 2 + 1, n_mels] triangular filters, equally spaced on the HTK mel scale, peak 1 (no area norm)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    bin_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2,
                                     dtype=torch.float64))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bin_hz[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def num_frames(num_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT: one per hop, plus one."""
    return 1 + num_samples // hop_length


def log_mel(wave: torch.Tensor, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, f_min: float = 0.0,
            f_max: float | None = None) -> torch.Tensor:
    """[B, T] waveforms → [B, n_mels, frames] log-mel in about [-1, 1].

    Power is converted to dB relative to each clip's peak, floored at −80 dB, then mapped linearly so the peak is
    +1 and the floor −1: no dataset statistics are needed and clip loudness does not shift the input.
    """
    window = torch.hann_window(n_fft, periodic=True, dtype=wave.dtype, device=wave.device)
    spec = torch.stft(wave, n_fft, hop_length, window=window, center=True, pad_mode="reflect",
                      return_complex=True)  # [B, n_fft//2+1, frames]
    power = spec.real**2 + spec.imag**2
    fb = mel_filterbank(n_fft, n_mels, sample_rate, f_min, f_max).to(wave.device, wave.dtype)
    mel = torch.einsum("bft,fm->bmt", power, fb)
    db = 10.0 * torch.log10(mel.clamp(min=1e-10))
    db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - TOP_DB)
    peak = db.amax(dim=(1, 2), keepdim=True)
    return (db - peak) / (TOP_DB / 2) + 1.0


__all__ = ["TOP_DB", "hz_to_mel", "log_mel", "mel_filterbank", "mel_to_hz", "num_frames"]

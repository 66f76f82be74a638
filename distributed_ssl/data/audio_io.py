"""Audio bytes ↔ mono float32 samples at a chosen rate: the one place that reads, mixes down and resamples.

Both the converter (files → shards) and the audio modality (shards → views) go through these functions,
so a clip decodes the same way wherever it is read.
"""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np

STORED_FORMATS = ("flac", "wav", "f32le")
# A corrupt header can claim any rate; outside this range resampling would explode a clip's length (or divide by 0).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 1_000_000


class AudioDecodeError(ValueError):
    """Audio bytes could not be decoded; the message names the record or file."""


def _soundfile():
    try:
        import soundfile
    except ImportError as exc:  # the optional extra, see pyproject.toml
        raise ImportError("audio needs the soundfile package: pip install 'distributed_ssl[audio]'") from exc
    return soundfile


def to_mono(samples: np.ndarray) -> np.ndarray:
    """[T] or [T, C] → [T] float32, averaging channels (a plain mix-down, as most pipelines do)."""
    samples = np.asarray(samples, dtype=np.float32)
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling with an anti-aliasing FIR (scipy), exact for any rational rate ratio."""
    if rate_in == rate_out or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    ratio = Fraction(rate_out, rate_in).limit_denominator(1000)
    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)


def checked(samples: np.ndarray, rate: int, where: str) -> tuple[np.ndarray, int]:
    """Refuse what a corrupt file can decode to: a nonsense sample rate, NaN or infinite samples."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(f"{where}: sample rate {rate} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]")
    if not np.isfinite(samples).all():
        raise AudioDecodeError(f"{where}: samples contain NaN or infinity")
    return samples, rate


def read_audio_bytes(data: bytes, fmt: str, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Decode stored bytes to (mono float32 samples, sample rate). `sample_rate` is needed for raw f32le."""
    if fmt == "f32le":
        if sample_rate is None:
            raise AudioDecodeError("raw f32le samples need a sample rate")
        if len(data) % 4:
            raise AudioDecodeError(f"raw f32le audio has {len(data)} bytes, not a multiple of 4")
        return checked(np.frombuffer(data, dtype="<f4").astype(np.float32), int(sample_rate), "raw f32le audio")
    sf = _soundfile()
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioDecodeError(f"cannot decode {fmt} audio: {exc}") from exc
    return checked(to_mono(samples), int(rate), f"{fmt} audio")


def read_audio_file(path: str, sample_rate: int) -> np.ndarray:
    """Any format libsndfile reads (wav, flac, ogg, ...) → mono float32 at `sample_rate`."""
    sf = _soundfile()
    try:
        samples, rate = sf.read(path, dtype="float32", always_2d=False)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioDecodeError(f"{path}: cannot read audio: {exc}") from exc
    samples, rate = checked(to_mono(samples), int(rate), str(path))
    return resample(samples, rate, sample_rate)


def encode_flac(samples: np.ndarray, sample_rate: int) -> bytes:
    """Lossless, about half the size of 16-bit WAV. Samples are clipped to [-1, 1] (FLAC stores integers)."""
    sf = _soundfile()
    buf = io.BytesIO()
    sf.write(buf, np.clip(samples, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()

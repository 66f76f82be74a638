"""Built-in labeled audio set: spoken command words synthesised locally by espeak-ng, many voices per word.

Nothing is downloaded: espeak-ng (a Debian/Ubuntu package) speaks each word with a random accent, voice variant,
speed and pitch, the clip is resampled to the target rate and stored as FLAC. The label is the word.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from distributed_ssl.data.audio_io import encode_flac, read_audio_file
from distributed_ssl.data.manifest import DatasetError, Manifest
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.data.write_order import mixed_order

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc"]
VARIANTS = ["m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "klatt", "klatt2"]
INSTALL_HINT = ("espeak-ng is not installed; it synthesises the audio sample set. Install it with "
                "`sudo apt-get install -y espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS), "
                "or convert your own clips with `dssl data convert audio SRC OUT`.")


def espeak_binary() -> str:
    """Path of espeak-ng, or a DatasetError that says how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise DatasetError(INSTALL_HINT)
    return path


def speak(binary: str, word: str, voice: str, speed: int, pitch: int, sample_rate: int, tmp: Path) -> np.ndarray:
    """One utterance as mono float32 at `sample_rate` (espeak-ng writes 22,050 Hz WAV)."""
    wav = tmp / f"{word}-{voice}-{speed}-{pitch}.wav"
    cmd = [binary, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), word]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not wav.exists():
        raise DatasetError(f"espeak-ng failed for {word!r} with voice {voice}: {result.stderr.strip()}")
    samples = read_audio_file(str(wav), sample_rate)
    wav.unlink()
    return samples


def split_voices(val_fraction: float, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """The accent+variant voices, shuffled and cut in two: (train voices, validation voices), no voice in both."""
    voices = [f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS]
    voices = [voices[i] for i in rng.permutation(len(voices))]
    n_val = min(max(1, round(len(voices) * val_fraction)), len(voices) - 1) if val_fraction > 0 else 0
    return voices[n_val:], voices[:n_val]


def write_spoken_words(out_uri: str, per_word: int = 60, sample_rate: int = 16000, val_fraction: float = 0.2,
                       shard_size: int = 512, seed: int = 0, words: list[str] | None = None) -> dict[str, Manifest]:
    """Write `out_uri/train` and `out_uri/val`: `per_word` utterances of each word, each a random voice.

    Split by speaker, as a real evaluation set is: validation clips are spoken only by voices that speak no
    training clip, so a probe measures words recognised across voices, not voices recognised again.
    """
    binary = espeak_binary()
    words = words or WORDS
    rng = np.random.default_rng(seed)
    voices = dict(zip((False, True), split_voices(val_fraction, rng), strict=True))
    n_val = (min(max(1, round(per_word * val_fraction)), per_word - 1) if per_word > 1 else 0) if voices[True] else 0
    jobs = []
    for label, word in enumerate(words):
        for k in range(per_word):
            is_val = k < n_val
            voice = voices[is_val][rng.integers(len(voices[is_val]))]
            jobs.append((label, word, k, voice, int(rng.integers(110, 220)), int(rng.integers(20, 80)),
                         float(rng.uniform(0.3, 1.0)), is_val))
    jobs = [jobs[i] for i in mixed_order(len(jobs), seed)]  # classes mixed in every shard
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=4) as pool:
        clips = list(pool.map(lambda j: speak(binary, j[1], j[3], j[4], j[5], sample_rate, Path(tmp)), jobs))
    writers = {s: ShardWriter(f"{out_uri.rstrip('/')}/{s}", "audio", shard_size, list(words)) for s in ("train", "val")}
    for (label, word, k, voice, speed, pitch, loudness, is_val), samples in zip(jobs, clips, strict=True):
        # espeak-ng speaks at full scale; a random loudness makes level a nuisance variable, as in real recordings
        samples = samples * (loudness / max(float(np.abs(samples).max()), 1e-6))
        writers["val" if is_val else "train"].add(
            {"id": f"{word}-{k:04d}", "audio": encode_flac(samples, sample_rate), "format": "flac",
             "sample_rate": sample_rate, "duration": len(samples) / sample_rate, "label": label,
             "source": f"espeak-ng -v {voice} -s {speed} -p {pitch} {word}"})
    return {s: w.close() for s, w in writers.items()}

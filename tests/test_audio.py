"""Audio: converter on real wav/flac files, log-mel against a numpy reference, augmentations, views, methods."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

from distributed_ssl.config import load_config
from distributed_ssl.data.audio_io import read_audio_bytes
from distributed_ssl.data.convert_audio import convert_audio_folder
from distributed_ssl.data.manifest import DatasetError, load_manifest, shard_paths
from distributed_ssl.methods.registry import build_method
from distributed_ssl.modalities.audio_augment import crop_or_pad, mix_at_snr, random_time_shift, spec_augment
from distributed_ssl.modalities.decode_errors import RecordDecodeError
from distributed_ssl.modalities.log_mel import log_mel
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.modalities.view_spec import ViewSpec

AUDIO = ["modality.name=audio", "model.encoder=vit_debug", "model.patch_size=8", "modality.n_mels=32",
         "modality.n_fft=512", "modality.hop_length=256", "modality.clip_seconds=1.0"]


def _tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_convert_wav_and_flac_folders(tmp_path):
    src = tmp_path / "src"
    (src / "high").mkdir(parents=True)
    (src / "low").mkdir()
    for i in range(3):
        stereo = np.stack([_tone(2000, 0.5, 22050), 0.5 * _tone(2000, 0.5, 22050)], axis=1)
        sf.write(src / "high" / f"h{i}.wav", stereo, 22050)  # stereo, 22.05 kHz → mono 16 kHz
        sf.write(src / "low" / f"l{i}.flac", _tone(200, 0.75, 16000), 16000)
    (src / "low" / "broken.wav").write_bytes(b"RIFF not really a wave file")

    report = convert_audio_folder(src, str(tmp_path / "out"), sample_rate=16000, val_fraction=0.34)
    assert [p for p, _ in report.bad_files] == [str(src / "low" / "broken.wav")]
    train, val = load_manifest(str(tmp_path / "out/train")), load_manifest(str(tmp_path / "out/val"))
    assert train.classes == ["high", "low"] and train.num_records + val.num_records == 6
    table = pq.read_table(shard_paths(str(tmp_path / "out/train"))[0])
    for row in table.to_pylist():
        samples, rate = read_audio_bytes(row["audio"], row["format"], row["sample_rate"])
        assert rate == 16000 and samples.ndim == 1 and row["format"] == "flac"
        expected = 0.5 if row["label"] == 0 else 0.75
        assert abs(row["duration"] - expected) < 1e-3 and abs(len(samples) / 16000 - expected) < 1e-3
        if row["label"] == 0:  # mix-down of a 0.5 and 0.25 amplitude pair, then resampled: peak about 0.375
            assert abs(np.abs(samples).max() - 0.375) < 0.02
    with pytest.raises(DatasetError, match="broken.wav"):
        convert_audio_folder(src, str(tmp_path / "out2"), on_bad="fail")


def _reference_log_mel(wave: np.ndarray, rate: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """Explicit DFT of reflect-padded Hann frames and a triangular HTK mel matrix, in float64 numpy."""
    padded = np.pad(wave, n_fft // 2, mode="reflect")
    frames = np.stack([padded[i:i + n_fft] for i in range(0, len(padded) - n_fft + 1, hop)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    dft = np.exp(-2j * np.pi * k * np.arange(n_fft)[None, :] / n_fft)
    power = np.abs((frames * window) @ dft.T) ** 2  # [frames, bins]
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = hz(np.linspace(mel(0), mel(rate / 2), n_mels + 2))
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    fb = np.zeros((len(freqs), n_mels))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        for j, f in enumerate(freqs):
            if lo < f <= mid:
                fb[j, m] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                fb[j, m] = (hi - f) / (hi - mid)
    db = 10 * np.log10(np.maximum(power @ fb, 1e-10)).T  # [mels, frames]
    db = np.maximum(db, db.max() - 80)
    return (db - db.max()) / 40 + 1


def test_log_mel_matches_explicit_dft_reference():
    rng = np.random.default_rng(0)
    rate = 8000
    waves = np.stack([_tone(440, 0.5, rate) + 0.05 * rng.standard_normal(4000).astype(np.float32),
                      _tone(1500, 0.5, rate) * np.linspace(0, 1, 4000, dtype=np.float32)])
    got = log_mel(torch.from_numpy(waves).double(), rate, n_fft=256, hop_length=128, n_mels=24).numpy()
    for i in range(2):
        ref = _reference_log_mel(waves[i].astype(np.float64), rate, 256, 128, 24)
        assert got[i].shape == ref.shape == (24, 1 + 4000 // 128)
        np.testing.assert_allclose(got[i], ref, atol=1e-6)
    # a 440 Hz tone is loudest in the band around 440 Hz
    peak_band = got[0].mean(axis=1).argmax()
    edges = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + 4000 / 700), 26) / 2595) - 1)
    assert edges[peak_band] < 440 < edges[peak_band + 2]


def test_crop_or_pad_respects_clip_lengths():
    wave = torch.full((2, 10), float("nan"))
    wave[0, :10] = torch.arange(10.0) + 1  # long clip
    wave[1, :3] = torch.tensor([1.0, 2.0, 3.0])  # short clip
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        out = crop_or_pad(wave, 5, gen)
        first = out[0]
        assert torch.equal(first, first[0] + torch.arange(5.0))  # a contiguous window of the long clip
        assert sorted(out[1][out[1] != 0].tolist()) == [1.0, 2.0, 3.0]  # the whole short clip, padded with 0
    centred = crop_or_pad(wave, 5, None)
    assert centred[0].tolist() == [3.0, 4.0, 5.0, 6.0, 7.0] and centred[1].tolist() == [0, 1.0, 2.0, 3.0, 0]


def test_mixing_hits_the_requested_snr_and_shift_is_circular():
    gen = torch.Generator().manual_seed(0)
    wave = torch.randn(4, 1000, generator=gen)
    mixed = mix_at_snr(wave, prob=1.0, snr_db=(10.0, 10.0), gen=gen)
    noise = mixed - wave
    snr = 10 * torch.log10(wave.pow(2).mean(1) / noise.pow(2).mean(1))
    assert torch.allclose(snr, torch.full((4,), 10.0), atol=1e-3)
    assert torch.equal(mix_at_snr(wave, prob=0.0, snr_db=(10.0, 10.0), gen=gen), wave)
    shifted = random_time_shift(wave, 100, gen)
    assert torch.allclose(shifted.sort(dim=1).values, wave.sort(dim=1).values)


def test_spec_augment_masks_bands_no_wider_than_configured():
    gen = torch.Generator().manual_seed(0)
    spec = torch.ones(64, 16, 40)
    out = spec_augment(spec, masks=1, time_width=5, freq_width=3, gen=gen, fill=0.0)
    hidden_frames = (out == 0).all(dim=1).sum(dim=1)  # whole columns zeroed by the time mask
    hidden_bands = (out == 0).all(dim=2).sum(dim=1)
    assert hidden_frames.max() <= 5 and hidden_bands.max() <= 3 and hidden_frames.sum() > 0
    assert hidden_bands.sum() > 0


def _batch(tmp_path, seconds=(0.4, 1.3, 0.9, 2.0)):
    rows = {"id": [], "audio": [], "format": [], "sample_rate": []}
    for i, s in enumerate(seconds):
        buf = io.BytesIO()
        sf.write(buf, _tone(300 + 100 * i, s, 22050), 22050, format="FLAC")
        rows["id"].append(f"clip-{i}")
        rows["audio"].append(buf.getvalue())
        rows["format"].append("flac")
        rows["sample_rate"].append(22050)
    return {k: np.array(v, dtype=object) for k, v in rows.items()}


@pytest.mark.parametrize("augment,mask", [("strong", False), ("light", True), ("none", False)])
def test_audio_views_match_the_encoder(tmp_path, augment, mask):
    cfg = load_config(None, AUDIO + (["method.name=mae"] if mask else []))  # a masking method has mask keys
    modality = build_modality(cfg)
    raw = modality.decode(_batch(tmp_path))
    assert raw.shape == (4, int(2.0 * 16000)) and torch.isnan(raw[0, 7000:]).all()
    views = modality.make_views(raw, ViewSpec(2, augment, mask), torch.Generator().manual_seed(0))
    assert views["view_0"].shape == views["view_1"].shape == (4, 1, 32, 56)  # 63 frames cut to 7 patches of 8
    assert np.isfinite(views["view_0"]).all()
    if mask:
        assert views["mask"].shape == (4, modality.num_patches()) == (4, 28)
    encoder = build_method(cfg).encoder
    assert encoder.embed(torch.from_numpy(views["view_0"])).shape == (4, encoder.dim) == (4, encoder.embed_dim)
    assert modality.eval_inputs(raw).shape == (4, 1, 32, 56)


@pytest.mark.parametrize("pooling", ["bands", "mean"])
def test_embedding_keeps_frequency_bands_apart(pooling):
    """`bands`: one time-mean per band of patches, concatenated, for full clips and shorter (local) segments alike;
    `mean`: one mean over every patch."""
    cfg = load_config(None, AUDIO + [f"modality.pooling={pooling}", "method.name=dino"])
    encoder = build_method(cfg).encoder.eval()
    bands, width = 32 // 8, encoder.dim
    for frames in (56, 24):  # a 1 s view (7 patches in time) and a local segment (3)
        x = torch.randn(3, 1, 32, frames)
        with torch.no_grad():
            tokens, embedding = encoder(x)[:, 1:], encoder.embed(x)
        if pooling == "mean":
            assert encoder.embed_dim == width
            torch.testing.assert_close(embedding, tokens.mean(dim=1))
        else:
            assert encoder.embed_dim == bands * width
            per_band = tokens.reshape(3, bands, frames // 8, width).mean(dim=2)  # grid rows are frequency bands
            torch.testing.assert_close(embedding, per_band.flatten(1))
            torch.testing.assert_close(embedding[:, width:2 * width], tokens[:, frames // 8:2 * (frames // 8)].mean(1))


def test_undecodable_audio_names_the_record(tmp_path):
    batch = _batch(tmp_path)
    batch["audio"][2] = b"garbage"
    with pytest.raises(RecordDecodeError, match="clip-2"):
        build_modality(load_config(None, AUDIO)).decode(batch)


@pytest.mark.parametrize("method", ["simclr", "mae"])
def test_methods_train_every_parameter_on_spectrograms(method):
    torch.manual_seed(0)
    cfg = load_config(None, AUDIO + [f"method.name={method}"])
    m = build_method(cfg)
    batch = {"view_0": torch.randn(4, 1, 32, 56), "view_1": torch.randn(4, 1, 32, 56)}
    mask = torch.zeros(4, 28, dtype=torch.bool)
    mask[:, ::2] = True
    batch["mask"] = mask
    out = m(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and not [n for n, p in m.named_parameters() if p.grad is None]


def test_spectrogram_smaller_than_a_patch_is_refused():
    cfg = load_config(None, AUDIO + ["model.patch_size=64"])
    with pytest.raises(ValueError, match="patch_size=64"):
        build_modality(cfg).num_patches()


def test_sample_set_says_what_to_install_without_espeak(monkeypatch, tmp_path):
    import distributed_ssl.data.sample_audio as sample_audio
    from distributed_ssl.cli import main

    monkeypatch.setattr(sample_audio.shutil, "which", lambda name: None)
    with pytest.raises(DatasetError, match="apt-get install -y espeak-ng"):
        sample_audio.write_spoken_words(str(tmp_path / "w"))
    assert main(["data", "sample", "audio", str(tmp_path / "w")]) == 2


def test_sample_set_speaks_labeled_words(tmp_path):
    from distributed_ssl.data.sample_audio import write_spoken_words

    manifests = write_spoken_words(str(tmp_path / "words"), per_word=3, words=["yes", "no"], val_fraction=0.34)
    assert manifests["train"].classes == ["yes", "no"]
    assert manifests["train"].num_records == 4 and manifests["val"].num_records == 2
    rows = pq.read_table(shard_paths(str(tmp_path / "words/train"))[0]).to_pylist()
    for row in rows:
        samples, rate = read_audio_bytes(row["audio"], row["format"])
        assert rate == 16000 and 0.2 < len(samples) / rate < 2.0
        assert np.abs(samples).max() > 0.1  # speech, not silence
        assert row["source"].startswith("espeak-ng -v ")


def test_sample_set_validation_voices_speak_no_training_clip(tmp_path):
    from distributed_ssl.data.sample_audio import write_spoken_words

    write_spoken_words(str(tmp_path / "words"), per_word=8, words=["yes", "no", "up"], val_fraction=0.25)

    def voices(split: str) -> set[str]:
        rows = [r for p in shard_paths(str(tmp_path / f"words/{split}")) for r in pq.read_table(p).to_pylist()]
        assert {r["label"] for r in rows} == {0, 1, 2}  # every word on both sides
        return {r["source"].split()[2] for r in rows}  # "espeak-ng -v VOICE ..."

    train, val = voices("train"), voices("val")
    assert train and val and not train & val

"""Convert a folder of wav/flac/ogg files into audio shards: mono, resampled, stored as FLAC; sub-folders → labels."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from distributed_ssl.data.audio_io import AudioDecodeError, encode_flac, read_audio_file
from distributed_ssl.data.convert_report import ConvertReport, FileSkipped, SkippedFile, skip_or_fail
from distributed_ssl.data.labeled_files import DEFAULT_MAX_FILE_MB, check_file_size, find_labeled_files
from distributed_ssl.data.manifest import Manifest
from distributed_ssl.data.shard_sources import (
    ConvertOptions,
    SampleOptions,
    ShardSource,
    register_shard_source,
)
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.data.splits import assign_splits

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}


def convert_audio_folder(src: str | Path, out_uri: str, sample_rate: int = 16000, shard_size: int = 1024,
                         val_fraction: float = 0.1, on_bad: str = "skip", seed: int = 0,
                         max_file_mb: float = DEFAULT_MAX_FILE_MB) -> ConvertReport:
    """Write `out/train` (and `out/val`). Every clip is mixed down to mono and resampled to `sample_rate`
    here, once, so training never pays for resampling; FLAC keeps the samples exact at half the size.
    Files over `max_file_mb` are skipped unread."""
    src = Path(src).expanduser()
    found = find_labeled_files(src, AUDIO_SUFFIXES, seed)
    is_val = assign_splits(found.labels, val_fraction, seed)
    splits = ["train", "val"] if val_fraction > 0 else ["train"]
    writers = {s: ShardWriter(f"{out_uri.rstrip('/')}/{s}", "audio", shard_size, found.classes) for s in splits}
    skipped: list[SkippedFile] = list(found.outside)
    for i, path in enumerate(tqdm(found.files, desc=f"converting {src}", unit="clip")):
        try:
            check_file_size(path, max_file_mb)
            samples = read_audio_file(str(path), sample_rate)
            if len(samples) == 0:
                raise AudioDecodeError(f"{path}: no samples")
        except FileSkipped as exc:
            skip_or_fail(skipped, str(path), exc, exc.category, on_bad)
            continue
        except AudioDecodeError as exc:
            skip_or_fail(skipped, str(path), exc, "corrupt", on_bad)
            continue
        writers["val" if is_val[i] else "train"].add(
            {"id": path.relative_to(src).as_posix(), "audio": encode_flac(samples, sample_rate), "format": "flac",
             "sample_rate": sample_rate, "duration": len(samples) / sample_rate, "label": found.labels[i],
             "source": str(path)})
    return ConvertReport({s: w.close() for s, w in writers.items()}, skipped)


def _convert(src: str, out: str, o: ConvertOptions) -> ConvertReport:
    return convert_audio_folder(src, out, o.sample_rate, o.shard_size or 1024, o.val_fraction, o.on_bad,
                                max_file_mb=o.max_file_mb)


def _write_sample(out: str, o: SampleOptions) -> dict[str, Manifest]:
    from distributed_ssl.data.sample_audio import write_spoken_words

    return write_spoken_words(out, per_word=o.per_class or 60, sample_rate=o.sample_rate, val_fraction=o.val_fraction,
                              shard_size=o.shard_size or 512)


register_shard_source(ShardSource("audio", files="wav/flac/ogg",
                                  sample="words spoken by espeak-ng (needs the espeak-ng package)",
                                  convert=_convert, write_sample=_write_sample))

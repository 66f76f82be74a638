"""Convert a folder of JPEG/PNG files into image shards; class sub-folders become labels."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from distributed_ssl.data.convert_report import ConvertReport, FileSkipped, SkippedFile, skip_or_fail
from distributed_ssl.data.image_io import ImageDecodeError, ImageTooLargeError, decode_image
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

IMAGE_SUFFIXES = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}


def verify_image(data: bytes, where: str) -> None:
    """Raise ImageDecodeError unless the bytes decode as training will decode them (same function, same limits)."""
    decode_image(data, "RGB", where)


def convert_image_folder(src: str | Path, out_uri: str, shard_size: int = 1024, val_fraction: float = 0.1,
                         on_bad: str = "skip", seed: int = 0,
                         max_file_mb: float = DEFAULT_MAX_FILE_MB) -> ConvertReport:
    """Write `out/train` (and `out/val` when val_fraction > 0), keeping original encoded bytes."""
    src = Path(src).expanduser()
    found = find_labeled_files(src, set(IMAGE_SUFFIXES), seed)
    is_val = assign_splits(found.labels, val_fraction, seed)
    splits = ["train", "val"] if val_fraction > 0 else ["train"]
    writers = {s: ShardWriter(f"{out_uri.rstrip('/')}/{s}", "image", shard_size, found.classes) for s in splits}
    skipped: list[SkippedFile] = list(found.outside)
    for i, path in enumerate(tqdm(found.files, desc=f"converting {src}", unit="img")):
        try:
            check_file_size(path, max_file_mb)
            data = path.read_bytes()
            verify_image(data, str(path))
        except FileSkipped as exc:
            skip_or_fail(skipped, str(path), exc, exc.category, on_bad)
            continue
        except ImageDecodeError as exc:
            category = "too_large" if isinstance(exc, ImageTooLargeError) else "corrupt"
            skip_or_fail(skipped, str(path), exc, category, on_bad)
            continue
        rel = path.relative_to(src).as_posix()
        writers["val" if is_val[i] else "train"].add(
            {"id": rel, "image": data, "format": IMAGE_SUFFIXES[path.suffix.lower()], "label": found.labels[i],
             "source": str(path)})
    return ConvertReport({s: w.close() for s, w in writers.items()}, skipped)


def _convert(src: str, out: str, o: ConvertOptions) -> ConvertReport:
    return convert_image_folder(src, out, o.shard_size or 1024, o.val_fraction, o.on_bad, max_file_mb=o.max_file_mb)


def _write_sample(out: str, o: SampleOptions) -> dict[str, Manifest]:
    if o.set == "photos":
        from distributed_ssl.data.sample_photos import write_photo_regions

        return write_photo_regions(out, size=o.size, shard_size=o.shard_size or 512)
    from distributed_ssl.data.sample_image import write_digits

    return write_digits(out, size=o.size, val_fraction=o.val_fraction, shard_size=o.shard_size or 512)


register_shard_source(ShardSource("image", files="jpg/png", sample="sklearn digits (--set photos: regions of 10 "
                                  "real photographs, train and val from disjoint regions)", convert=_convert,
                                  write_sample=_write_sample, sets=("photos",)))

"""Convert a folder of JPEG/PNG files into image shards; class sub-folders become labels."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from distributed_ssl.data.manifest import DatasetError, Manifest
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.data.splits import assign_splits

IMAGE_SUFFIXES = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}


@dataclass
class ConvertReport:
    manifests: dict[str, Manifest]
    bad_files: list[tuple[str, str]] = field(default_factory=list)


def find_images(src: Path) -> tuple[list[Path], list[str]]:
    """All image files under `src` and the class names (first-level folders) when every image is in one."""
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"no .jpg/.jpeg/.png files found under {src}")
    top_dirs = {p.relative_to(src).parts[0] for p in files if len(p.relative_to(src).parts) > 1}
    labeled = all(len(p.relative_to(src).parts) > 1 for p in files)
    return files, sorted(top_dirs) if labeled else []


def verify_image(data: bytes) -> None:
    """Raise if the bytes are not a complete, decodable image."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()


def convert_image_folder(src: str | Path, out_uri: str, shard_size: int = 1024, val_fraction: float = 0.1,
                         on_bad: str = "skip", seed: int = 0) -> ConvertReport:
    """Write `out/train` (and `out/val` when val_fraction > 0), keeping original encoded bytes."""
    src = Path(src).expanduser()
    if not src.is_dir():
        raise DatasetError(f"source folder not found: {src}")
    files, classes = find_images(src)
    class_index = {c: i for i, c in enumerate(classes)}
    labels = [class_index[p.relative_to(src).parts[0]] if classes else None for p in files]
    is_val = assign_splits(labels, val_fraction, seed)
    splits = ["train", "val"] if val_fraction > 0 else ["train"]
    writers = {s: ShardWriter(f"{out_uri.rstrip('/')}/{s}", "image", shard_size, classes) for s in splits}
    bad: list[tuple[str, str]] = []
    for i, path in enumerate(tqdm(files, desc=f"converting {src}", unit="img")):
        data = path.read_bytes()
        try:
            verify_image(data)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            if on_bad == "fail":
                raise DatasetError(f"corrupt image {path}: {exc}") from exc
            bad.append((str(path), str(exc)))
            continue
        rel = path.relative_to(src).as_posix()
        writers["val" if is_val[i] else "train"].add(
            {"id": rel, "image": data, "format": IMAGE_SUFFIXES[path.suffix.lower()], "label": labels[i],
             "source": str(path)})
    return ConvertReport({s: w.close() for s, w in writers.items()}, bad)

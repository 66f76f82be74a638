"""Find the source files of a converter and their labels: first-level class sub-folders become labels.

Only files inside the source folder are read: a symlink whose target resolves outside it (a link to
`/etc/shadow` or to another user's data) is listed as skipped, never opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from distributed_ssl.data.convert_report import FileSkipped, SkippedFile
from distributed_ssl.data.manifest import DatasetError
from distributed_ssl.data.write_order import mixed_order

DEFAULT_MAX_FILE_MB = 512  # `dssl data convert --max-file-mb`: larger source files are skipped unread


@dataclass
class SourceFiles:
    files: list[Path]
    classes: list[str]
    labels: list[int | None]  # per file
    outside: list[SkippedFile] = field(default_factory=list)  # symlinks out of the source folder, never read


def _outside_source(path: Path, root: Path) -> SkippedFile | None:
    """A symlink (or a path through one) whose target is not under `root`, as a skipped file."""
    target = path.resolve()
    if target.is_relative_to(root):
        return None
    return SkippedFile(str(path), f"{path} is a symlink to {target}, outside the source folder {root}; not read",
                       "outside_source")


def find_labeled_files(src: Path, suffixes: set[str], seed: int = 0) -> SourceFiles:
    """Files under `src` with one of `suffixes`, class names and a label per file, in the seeded mixed order that
    converters write them in (`write_order.mixed_order`: shards mix the classes rather than hold one each).

    Files are labeled only when every one sits in a sub-folder; a mix of loose and foldered files is unlabeled,
    because a partial labeling would silently drop the loose files from the probe.
    """
    if not src.is_dir():
        raise DatasetError(f"source folder not found: {src}")
    root = src.resolve()
    files, outside = [], []
    for p in sorted(src.rglob("*")):
        if not (p.is_symlink() and p.is_dir()) and not (p.is_file() and p.suffix.lower() in suffixes):
            continue
        skipped = _outside_source(p, root)
        if skipped is not None:
            outside.append(skipped)
        elif p.is_file():  # a symlinked folder inside src is not walked (pathlib never follows one)
            files.append(p)
    if not files:
        raise DatasetError(f"no {'/'.join(sorted(suffixes))} files found under {src}")
    labeled = all(len(p.relative_to(src).parts) > 1 for p in files)
    classes = sorted({p.relative_to(src).parts[0] for p in files}) if labeled else []
    index = {c: i for i, c in enumerate(classes)}
    files = [files[i] for i in mixed_order(len(files), seed)]
    labels = [index[p.relative_to(src).parts[0]] if classes else None for p in files]
    return SourceFiles(files, classes, labels, outside)


def check_file_size(path: Path, max_file_mb: float) -> None:
    """Refuse a source file over `max_file_mb` before reading it (decoders would hold all of it in memory)."""
    size = path.stat().st_size
    if size > max_file_mb * 1024 * 1024:
        raise FileSkipped(f"{path} is {size / 2**20:.1f} MB, more than --max-file-mb {max_file_mb:g}", "too_large")

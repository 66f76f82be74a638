"""Find the source files of a converter and their labels: first-level class sub-folders become labels."""

from __future__ import annotations

from pathlib import Path

from distributed_ssl.data.manifest import DatasetError


def find_labeled_files(src: Path, suffixes: set[str]) -> tuple[list[Path], list[str], list[int | None]]:
    """(files under `src` with one of `suffixes`, class names, label per file).

    Files are labeled only when every one sits in a sub-folder; a mix of loose and foldered files is unlabeled,
    because a partial labeling would silently drop the loose files from the probe.
    """
    if not src.is_dir():
        raise DatasetError(f"source folder not found: {src}")
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise DatasetError(f"no {'/'.join(sorted(suffixes))} files found under {src}")
    labeled = all(len(p.relative_to(src).parts) > 1 for p in files)
    classes = sorted({p.relative_to(src).parts[0] for p in files}) if labeled else []
    index = {c: i for i, c in enumerate(classes)}
    labels = [index[p.relative_to(src).parts[0]] if classes else None for p in files]
    return files, classes, labels

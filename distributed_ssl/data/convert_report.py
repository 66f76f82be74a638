"""What a conversion wrote and which source files it skipped, each with a reason and a category.

Categories keep the report honest: a LiDAR scan with too few points, a file over `--max-file-mb` or a symlink out
of the source folder is skipped for a reason other than corruption, and `dssl data convert` says which.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from distributed_ssl.data.manifest import DatasetError, Manifest

SkipCategory = Literal["corrupt", "too_large", "too_few_points", "too_many_tiles", "outside_source"]
CATEGORY_WORDS: dict[str, str] = {
    "corrupt": "corrupt",
    "too_large": "too large",
    "too_few_points": "too few points",
    "too_many_tiles": "extent too large to tile",
    "outside_source": "symlink out of the source folder",
}


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str  # says why, naming the limit when one was hit
    category: SkipCategory


class FileSkipped(ValueError):
    """Raised by a per-file step: this file is not converted, for `reason` (of `category`)."""

    def __init__(self, reason: str, category: SkipCategory):
        super().__init__(reason)
        self.category = category


@dataclass
class ConvertReport:
    manifests: dict[str, Manifest]
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def bad_files(self) -> list[tuple[str, str]]:
        """(path, reason) of every skipped file, whatever its category."""
        return [(s.path, s.reason) for s in self.skipped]

    def summary(self) -> str:
        """e.g. "3 files skipped: 1 corrupt, 2 too large"; empty when none was."""
        if not self.skipped:
            return ""
        counts = Counter(s.category for s in self.skipped)
        parts = ", ".join(f"{counts[c]} {words}" for c, words in CATEGORY_WORDS.items() if counts[c])
        return f"{len(self.skipped)} file{'s' if len(self.skipped) > 1 else ''} skipped: {parts}"


def skip_or_fail(skipped: list[SkippedFile], path: str, error: Exception, category: SkipCategory,
                 on_bad: str) -> None:
    """`--on-bad skip`: note the file and go on; `--on-bad fail`: stop, naming it.

    The noted reason drops a leading "PATH: " (readers name their file), as the report prints the path itself.
    """
    reason = str(error)
    if on_bad == "fail":
        raise DatasetError(reason if path in reason else f"{path}: {reason}") from error
    skipped.append(SkippedFile(path, reason.removeprefix(f"{path}: "), category))

"""The matplotlib figure every shard preview is drawn on: headless, fixed dpi, so a PNG's size is known."""

from __future__ import annotations

from typing import Any

PREVIEW_DPI = 100


def headless_pyplot():
    """matplotlib.pyplot on the Agg backend: previews are written on machines without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(rows: int, cols: int, cell: tuple[float, float], **kwargs: Any):
    """(figure, axes[rows][cols]) of `cell` inches per panel."""
    return headless_pyplot().subplots(rows, cols, figsize=(cell[0] * cols, cell[1] * rows), squeeze=False, **kwargs)


def save_figure(fig, out_path: str) -> str:
    """Write the PNG at PREVIEW_DPI and free the figure; returns `out_path`."""
    import matplotlib.pyplot as plt

    fig.savefig(out_path, dpi=PREVIEW_DPI)
    plt.close(fig)
    return out_path


def label_name(label: int | None, classes: list[str]) -> str:
    """A record's class name from the manifest, its number if the manifest has no name for it, `unlabeled`."""
    if label is None:
        return "unlabeled"
    return classes[label] if 0 <= label < len(classes) else str(label)

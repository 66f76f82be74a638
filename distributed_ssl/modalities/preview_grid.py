"""The views-preview PNG that image and audio share: one row per sample, one column per view, and a last column
with the first view's hidden patches marked, so a person can see what the model is trained on."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def save_view_grid(batch: dict[str, np.ndarray], path: str, cell: tuple[float, float],
                   to_image: Callable[[np.ndarray], np.ndarray],
                   hide_patches: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   draw: Callable[[object, np.ndarray], None]) -> None:
    """`to_image(view_row)` makes a view displayable, `hide_patches(image, mask_row)` marks the hidden patches of a
    copy of the first view, `draw(axes, image)` shows one cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = sorted(k for k in batch if k.startswith("view_"))
    rows = min(6, len(batch[views[0]]))
    cols = len(views) + (1 if "mask" in batch else 0)
    fig, axes = plt.subplots(rows, cols, figsize=(cell[0] * cols, cell[1] * rows), squeeze=False)
    for r in range(rows):
        shown = [(v, to_image(batch[v][r])) for v in views]
        if "mask" in batch:
            shown.append(("mask", hide_patches(shown[0][1].copy(), batch["mask"][r])))
        for col, (title, img) in enumerate(shown):
            ax = axes[r][col]
            draw(ax, img)
            ax.set_axis_off()
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

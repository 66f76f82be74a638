"""Image shard preview: a grid of the first images with their labels."""

from __future__ import annotations

import pyarrow as pa

from distributed_ssl.data.image_io import decode_image
from distributed_ssl.preview.preview_figure import label_name, new_figure, save_figure

IMAGE_COLUMNS = 8


def write_image_preview(table: pa.Table, classes: list[str], out_path: str) -> str:
    """Up to `len(table)` images, 8 per row, each titled with its label."""
    images, labels = table.column("image").to_pylist(), table.column("label").to_pylist()
    rows = max(1, -(-len(images) // IMAGE_COLUMNS))
    fig, axes = new_figure(rows, IMAGE_COLUMNS, (1.2, 1.3))
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, data, label in zip(axes.flat, images, labels, strict=False):
        ax.imshow(decode_image(data, "RGB", where="a previewed record"))
        ax.set_title(label_name(label, classes), fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_path)

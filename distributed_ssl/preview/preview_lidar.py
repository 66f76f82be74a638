"""LiDAR shard preview: each of the first clouds from the top (x-y) and from the side (x-z), coloured by height."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from distributed_ssl.preview.preview_figure import headless_pyplot, label_name, save_figure

LIDAR_CLOUDS_PER_ROW = 4
MAX_POINTS_DRAWN = 20000  # a random subset keeps large aerial tiles quick to draw


def cloud_points(data: bytes, num_points: int, rid: str) -> np.ndarray:
    """A stored cloud → float32 [N, 4] (x, y, z, intensity), failing with the record id if the bytes are wrong."""
    if len(data) != num_points * 16:
        raise ValueError(f"record {rid!r}: {len(data)} bytes of points do not match num_points={num_points} × 4 "
                         "float32")
    return np.frombuffer(data, dtype="<f4").reshape(num_points, 4)


def _drawn_subset(points: np.ndarray, seed: int) -> np.ndarray:
    if len(points) <= MAX_POINTS_DRAWN:
        return points
    return points[np.random.default_rng(seed).choice(len(points), MAX_POINTS_DRAWN, replace=False)]


def write_lidar_preview(table: pa.Table, classes: list[str], out_path: str) -> str:
    """Up to `len(table)` clouds side by side: the top view above, the side view (height stretched) below it, on
    one x axis; colour = height z in metres, one scale per cloud so low scenes show their structure too."""
    rows_data = table.select(["id", "points", "num_points", "label"]).to_pylist()
    cols = max(1, min(LIDAR_CLOUDS_PER_ROW, len(rows_data)))
    rows = max(1, -(-len(rows_data) // cols))
    fig = headless_pyplot().figure(figsize=(3.4 * cols, 4.4 * rows), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[3, 1.1] * rows)
    for i, row in enumerate(rows_data):
        r, c = divmod(i, cols)
        top = fig.add_subplot(grid[2 * r, c])
        side = fig.add_subplot(grid[2 * r + 1, c], sharex=top)
        pts = _drawn_subset(cloud_points(row["points"], int(row["num_points"]), row["id"]), i)
        x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
        low, high = np.percentile(z, [1, 99])
        order = np.argsort(z)  # draw high points last, so roofs and canopies are not hidden by the ground
        style = {"cmap": "viridis", "vmin": low, "vmax": high, "s": 0.6, "linewidths": 0}
        drawn = top.scatter(x[order], y[order], c=z[order], **style)
        side.scatter(x, z, c=z, **style)
        top.set_aspect("equal", adjustable="datalim")
        side.set_ylim(low - 0.05 * (high - low) - 0.5, high + 0.1 * (high - low) + 0.5)
        top.set_title(f"{label_name(row['label'], classes)} · top (x-y)", fontsize=8)
        side.set_title("side (x-z, height stretched)", fontsize=7)
        for ax in (top, side):
            ax.tick_params(labelsize=6)
        bar = fig.colorbar(drawn, ax=[top, side], shrink=0.7, pad=0.02)
        bar.set_label("z (m)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    return save_figure(fig, out_path)

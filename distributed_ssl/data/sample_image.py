"""Built-in labeled image set: scikit-learn's 1,797 handwritten digits, upscaled to 32×32 PNGs."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from distributed_ssl.data.manifest import Manifest
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.data.splits import assign_splits


def write_digits(out_uri: str, size: int = 32, val_fraction: float = 0.2, shard_size: int = 512,
                 seed: int = 0) -> dict[str, Manifest]:
    """Write `out_uri/train` and `out_uri/val` shard folders of the digits set."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).clip(0, 255).astype(np.uint8)
    labels = [int(t) for t in digits.target]
    is_val = assign_splits(labels, val_fraction, seed)
    classes = [str(c) for c in digits.target_names]
    writers = {split: ShardWriter(f"{out_uri.rstrip('/')}/{split}", "image", shard_size, classes)
               for split in ("train", "val")}
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        img = Image.fromarray(pixels, mode="L").resize((size, size), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        writers["val" if is_val[i] else "train"].add(
            {"id": f"digits-{i:05d}", "image": buf.getvalue(), "format": "png", "label": label,
             "source": f"sklearn.datasets.load_digits[{i}]"})
    return {split: w.close() for split, w in writers.items()}

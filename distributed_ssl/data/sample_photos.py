"""Built-in evaluation set of real photos: crops of ten photographs, train and val from disjoint regions.

Nobody here made these images: they are the photographs scikit-image and scikit-learn ship inside their wheels
(an astronaut, a cat, a rocket, coffee, a street in China, brick, grass and gravel textures, a camera man, the
Hubble deep field). The class of a crop is the photograph it was cut from. Train crops lie wholly in the left
`train_width` of each photograph and val crops wholly in the rest, so no pixel is on both sides: a probe must
recognise a photograph's content and texture from regions it has never seen, not match a near-duplicate crop.
Crop sides vary (`min_side`..`max_side` of the photograph's short side) before they are resized to `size`, so scale
is not a class cue either. Grey photographs are stored as RGB (the channel replicated).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

from distributed_ssl.data.manifest import Manifest
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.data.write_order import mixed_order


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()
    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)
    return load


# class name → loader of one real photograph bundled in an installed wheel (nothing is downloaded)
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "brick": _skimage("brick"),
    "camera": _skimage("camera"),
    "chelsea": _skimage("chelsea"),
    "china": _sklearn("china.jpg"),
    "coffee": _skimage("coffee"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "rocket": _skimage("rocket"),
}


def _rgb(photo: np.ndarray) -> np.ndarray:
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=2)
    return np.ascontiguousarray(photo[..., :3].astype(np.uint8))


def _crops(photo: np.ndarray, count: int, x_range: tuple[int, int], sides: tuple[int, int],
           rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """`count` square crops (x, y, side) lying wholly inside columns x_range of the photograph."""
    h = photo.shape[0]
    out = []
    for _ in range(count):
        side = int(rng.integers(sides[0], sides[1] + 1))
        x = int(rng.integers(x_range[0], x_range[1] - side + 1))
        y = int(rng.integers(0, h - side + 1))
        out.append((x, y, side))
    return out


def write_photo_regions(out_uri: str, size: int = 32, train_per_class: int = 150, val_per_class: int = 50,
                        train_width: float = 0.6, min_side: float = 0.15, max_side: float = 0.35,
                        shard_size: int = 512, seed: int = 0) -> dict[str, Manifest]:
    """Write `out_uri/train` and `out_uri/val` shard folders of photo-region crops (PNG, `size`×`size` RGB)."""
    if not 0.0 < min_side <= max_side < min(train_width, 1.0 - train_width):
        raise ValueError(f"crop sides {min_side}..{max_side} of the short side must fit in both regions "
                         f"(train width {train_width})")
    rng = np.random.default_rng(seed)
    classes = list(PHOTOS)
    records: dict[str, list[dict]] = {"train": [], "val": []}
    for label, name in enumerate(classes):
        photo = _rgb(PHOTOS[name]())
        h, w = photo.shape[:2]
        short = min(h, w)
        sides = (max(size, int(min_side * short)), max(size, int(max_side * short)))
        split_x = int(train_width * w)
        for split, count, x_range in (("train", train_per_class, (0, split_x)), ("val", val_per_class, (split_x, w))):
            for i, (x, y, side) in enumerate(_crops(photo, count, x_range, sides, rng)):
                crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.Resampling.BOX)
                buf = io.BytesIO()
                crop.save(buf, format="PNG")
                records[split].append({"id": f"photo-{name}-{split}-{i:04d}", "image": buf.getvalue(),
                                       "format": "png", "label": label, "source": f"{name} x={x} y={y} side={side}"})
    manifests = {}
    for split, rows in records.items():  # written with the classes mixed in every shard
        writer = ShardWriter(f"{out_uri.rstrip('/')}/{split}", "image", shard_size, classes)
        for i in mixed_order(len(rows), seed):
            writer.add(rows[i])
        manifests[split] = writer.close()
    return manifests

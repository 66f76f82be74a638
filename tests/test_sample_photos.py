"""The photo-region evaluation set: real bundled photographs, train and val from disjoint regions."""

from __future__ import annotations

import io
import re

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from distributed_ssl.data.manifest import shard_paths
from distributed_ssl.data.sample_photos import PHOTOS, write_photo_regions

SOURCE = re.compile(r"^(?P<name>\w+) x=(?P<x>\d+) y=(?P<y>\d+) side=(?P<side>\d+)$")


def _records(uri: str) -> list[dict]:
    rows = []
    for path in shard_paths(uri):
        rows.extend(pq.read_table(path, columns=["id", "image", "label", "source"]).to_pylist())
    return rows


def test_train_and_val_crops_come_from_disjoint_regions_of_each_photo(tmp_path):
    out = tmp_path / "photos"
    manifests = write_photo_regions(str(out), train_per_class=20, val_per_class=8)
    assert manifests["train"].num_records == 200 and manifests["val"].num_records == 80
    assert manifests["train"].classes == list(PHOTOS)
    split_x = {name: int(0.6 * _width(name)) for name in PHOTOS}
    for split in ("train", "val"):
        rows = _records(str(out / split))
        assert np.bincount([r["label"] for r in rows]).tolist() == [20 if split == "train" else 8] * 10
        for r in rows:
            m = SOURCE.match(r["source"])
            name, x, side = m["name"], int(m["x"]), int(m["side"])
            assert list(PHOTOS)[r["label"]] == name
            if split == "train":
                assert x + side <= split_x[name], r["source"]
            else:
                assert x >= split_x[name], r["source"]
            img = Image.open(io.BytesIO(r["image"]))
            assert img.size == (32, 32) and img.mode == "RGB"


def test_the_set_is_the_same_for_the_same_seed(tmp_path):
    a = write_photo_regions(str(tmp_path / "a"), train_per_class=4, val_per_class=2)
    b = write_photo_regions(str(tmp_path / "b"), train_per_class=4, val_per_class=2)
    c = write_photo_regions(str(tmp_path / "c"), train_per_class=4, val_per_class=2, seed=1)
    assert [s.sha256 for s in a["train"].shards] == [s.sha256 for s in b["train"].shards]
    assert [s.sha256 for s in a["train"].shards] != [s.sha256 for s in c["train"].shards]


def _width(name: str) -> int:
    return PHOTOS[name]().shape[1]

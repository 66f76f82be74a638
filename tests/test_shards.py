import hashlib
import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from distributed_ssl.data.convert_image import convert_image_folder
from distributed_ssl.data.manifest import DatasetError, load_manifest, shard_paths
from distributed_ssl.data.schemas import check_schema, schema_for
from distributed_ssl.preview.inspect import describe, write_preview


def test_digits_manifest_counts_and_checksums(digits):
    train, val = load_manifest(str(digits / "train")), load_manifest(str(digits / "val"))
    assert train.num_records + val.num_records == 1797
    assert set(train.label_counts) == set(val.label_counts) == {str(i) for i in range(10)}
    assert len(train.shards) == -(-train.num_records // 400)
    for info, path in zip(train.shards, shard_paths(str(digits / "train"), train), strict=True):
        data = open(path, "rb").read()
        assert hashlib.sha256(data).hexdigest() == info.sha256 and len(data) == info.bytes
        table = pq.read_table(path)
        assert table.num_rows == info.num_records
        check_schema(table.schema, "image", path)
    img = Image.open(io.BytesIO(pq.read_table(shard_paths(str(digits / "val"))[0]).column("image")[0].as_py()))
    assert img.size == (32, 32)


def _write_images(root, corrupt: bool = True):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            arr = rng.integers(0, 255, (20 + i, 24, 3), dtype=np.uint8)
            fmt, ext = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
            Image.fromarray(arr).save(root / cls / f"{i}.{ext}", format=fmt)
    if corrupt:
        (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_convert_folder_round_trip(tmp_path):
    src = tmp_path / "photos"
    _write_images(src)
    report = convert_image_folder(src, str(tmp_path / "out"), shard_size=4, val_fraction=0.25)
    assert [p for p, _ in report.bad_files] == [str(src / "dog" / "broken.jpg")]
    train, val = report.manifests["train"], report.manifests["val"]
    assert train.classes == ["cat", "dog"] and train.num_records + val.num_records == 12
    assert val.label_counts == {"cat": 2, "dog": 2}
    rows = []
    for split in ("train", "val"):
        for path in shard_paths(str(tmp_path / "out" / split)):
            rows += pq.read_table(path).to_pylist()
    by_id = {r["id"]: r for r in rows}
    original = (src / "cat" / "1.jpg").read_bytes()
    assert by_id["cat/1.jpg"]["image"] == original and by_id["cat/1.jpg"]["label"] == 0
    assert by_id["dog/2.png"]["format"] == "png" and by_id["dog/2.png"]["label"] == 1
    text = describe(str(tmp_path / "out"))
    assert "[train]" in text and "[val]" in text and "cat" in text
    png = write_preview(str(tmp_path / "out"), str(tmp_path / "preview.png"))
    assert Image.open(png).size[0] > 100


def test_converted_shards_mix_the_classes_the_same_way_each_time(tmp_path):
    # A folder walk finds files class by class; shards written in that order would each hold one class, and a
    # streamed local shuffle then draws batches of a few classes.
    src = tmp_path / "folders"
    for name in ("ant", "bee", "cat", "dog"):
        (src / name).mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (8, 8), (20 * i, 40, 60)).save(src / name / f"{i}.png")
    for out in ("a", "b"):
        convert_image_folder(src, str(tmp_path / out), shard_size=8, val_fraction=0.0)
    shards = shard_paths(str(tmp_path / "a" / "train"))
    assert len(shards) == 6
    for path in shards:
        assert len(set(pq.read_table(path, columns=["label"]).column("label").to_pylist())) >= 3, path
    again = shard_paths(str(tmp_path / "b" / "train"))
    assert [pq.read_table(p).to_pylist() for p in shards] == [pq.read_table(p).to_pylist() for p in again]
    text = describe(str(tmp_path / "a"))
    assert "classes per shard:" in text and "warning" not in text

    # Shards written class by class (by another tool) are named as such by `dssl data inspect`.
    from distributed_ssl.data.shard_writer import ShardWriter

    rows = sorted((r for p in shards for r in pq.read_table(p).to_pylist()), key=lambda r: r["label"])
    writer = ShardWriter(str(tmp_path / "sorted"), "image", 12, ["ant", "bee", "cat", "dog"])
    for row in rows:
        writer.add(row)
    writer.close()
    text = describe(str(tmp_path / "sorted"))
    assert "classes per shard: 1.0 of 4" in text and "written class by class" in text and "data.shuffle=full" in text


def test_convert_fail_mode_names_the_file(tmp_path):
    src = tmp_path / "photos"
    _write_images(src)
    with pytest.raises(DatasetError, match="broken.jpg"):
        convert_image_folder(src, str(tmp_path / "out"), on_bad="fail")


def test_unlabeled_folder_and_missing_paths(tmp_path):
    src = tmp_path / "flat"
    src.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "a.png")
    report = convert_image_folder(src, str(tmp_path / "o"), val_fraction=0)
    assert report.manifests["train"].classes == [] and not report.manifests["train"].has_labels
    with pytest.raises(DatasetError, match="source folder not found"):
        convert_image_folder(tmp_path / "nope", str(tmp_path / "o2"))
    with pytest.raises(DatasetError, match="shard folder not found"):
        load_manifest(str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="no manifest.json"):
        load_manifest(str(src))


def test_schema_version_mismatch_is_refused():
    schema = schema_for("image").with_metadata({b"dssl.modality": b"image", b"dssl.schema_version": b"0"})
    with pytest.raises(ValueError, match="shard-x.*schema_version=0"):
        check_schema(schema, "image", "shard-x")


def test_shards_through_a_filesystem_uri(tmp_path):
    """Shards are addressed by pyarrow filesystem URIs (file:// here; s3:// and gs:// take the same path)."""
    from distributed_ssl.data.sample_image import write_digits

    uri = (tmp_path / "uri_digits").as_uri()
    manifests = write_digits(uri, shard_size=1000)
    assert load_manifest(f"{uri}/train").num_records == manifests["train"].num_records
    paths = shard_paths(f"{uri}/val")
    assert paths and all(p.startswith(str(tmp_path)) for p in paths)
    assert sum(pq.read_table(p).num_rows for p in paths) == manifests["val"].num_records

"""Hostile inputs, each a real file in its real format: a shard whose pickled-object column would run code, a
shard changed after its manifest was written, manifest shard names that are paths, a decompression-bomb PNG, an
empty LAS file, a cloud too wide to tile, an oversized file, symlinks out of the source folder, and images in
16-bit and transparent modes that naive decoding gets wrong."""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import struct
import zlib
from pathlib import Path

import laspy
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from PIL import Image
from ray.data._internal.object_extensions.arrow import ArrowPythonObjectArray

from distributed_ssl.cli import main
from distributed_ssl.config import load_config
from distributed_ssl.curation.prune import read_ids
from distributed_ssl.data.convert_audio import convert_audio_folder
from distributed_ssl.data.convert_image import convert_image_folder
from distributed_ssl.data.convert_lidar import MAX_TILES_PER_CLOUD
from distributed_ssl.data.image_io import ALPHA_BACKGROUND, MAX_IMAGE_PIXELS, ImageTooLargeError, decode_image
from distributed_ssl.data.manifest import MANIFEST_NAME, DatasetError, load_manifest, shard_paths
from distributed_ssl.data.shard_reader import read_shards
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.data.train_records import open_train_manifest
from distributed_ssl.evaluation.labeled_set import load_labeled_split
from distributed_ssl.modalities.registry import build_modality
from distributed_ssl.preview.inspect import write_preview


class TouchOnUnpickle:
    """Unpickling this runs `Path(marker).touch()`: the payload a hostile shard carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _image_shards(root: Path, count: int = 4, shade: int = 0) -> str:
    writer = ShardWriter(str(root), "image", shard_size=2, classes=["a", "b"])
    for i in range(count):
        writer.add({"id": f"img-{i}", "image": _png(Image.new("RGB", (8, 8), (shade + 30 * i, 0, 0))),
                    "format": "png", "label": i % 2, "source": "test"})
    writer.close()
    return str(root)


def _replace_shard(uri: str, index: int, table: pa.Table) -> str:
    """Write `table` as shard `index` and record its true size and sha256: a manifest-consistent shard."""
    path = shard_paths(uri)[index]
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    Path(path).write_bytes(data)
    manifest_path = Path(uri) / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][index].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
                                     num_records=table.num_rows)
    manifest_path.write_text(json.dumps(manifest))
    return path


def _with_pickled_source(table: pa.Table, marker: Path) -> pa.Table:
    payload = ArrowPythonObjectArray.from_objects([TouchOnUnpickle(marker)] * table.num_rows)
    index = table.schema.get_field_index("source")
    return table.set_column(index, "source", payload).replace_schema_metadata(table.schema.metadata)


@pytest.mark.reliability(failure="a manifest-consistent shard whose `source` column holds Ray's pickled-object "
                                 "extension type, with a payload that runs code when unpickled",
                         response="refused with a DatasetError naming the shard and the column, before any value "
                                  "is turned into Python, by every reader (train, eval, prune, inspect), even with "
                                  "RAY_DATA_AUTOLOAD_PICKLE_OBJECT_SCALAR=1")
def test_pickled_object_column_is_refused_and_never_runs(tmp_path, monkeypatch):
    uri = _image_shards(tmp_path / "train")
    clean = pq.read_table(shard_paths(uri)[0])
    proof = tmp_path / "proof"
    _with_pickled_source(clean, proof).column("source").to_pylist()
    assert proof.exists()  # the payload is real: unpickling it runs code

    marker = tmp_path / "pwned"
    shard = _replace_shard(uri, 0, _with_pickled_source(clean, marker))
    assert pq.read_schema(shard).field("source").type.extension_name == "ray.data.arrow_pickled_object"
    monkeypatch.setenv("RAY_DATA_AUTOLOAD_PICKLE_OBJECT_SCALAR", "1")  # Ray's own guard off: ours still holds
    cfg = load_config(None, [f"data.train={uri}", f"data.eval={uri}"])
    readers = {"eval": lambda: load_labeled_split(uri, cfg), "train": lambda: open_train_manifest(cfg),
               "shards": lambda: read_shards(uri, load_manifest(uri)), "prune": lambda: read_ids(uri),
               "preview": lambda: write_preview(uri, str(tmp_path / "p.png"), count=64)}
    for name, read in readers.items():
        with pytest.raises(DatasetError, match=f"{shard}.*'source'.*arrow_pickled_object") as info:
            read()
        assert shard in str(info.value), name
    assert not marker.exists()


@pytest.mark.reliability(failure="a shard changed after its manifest was written (one byte flipped), read "
                                 "locally or through a file:// URI",
                         response="DatasetError naming the shard and both sha256 hashes, on the first read")
@pytest.mark.parametrize("as_uri", [False, True])
def test_flipped_byte_fails_the_manifest_checksum(tmp_path, as_uri):
    uri = _image_shards(tmp_path / "train")
    path = Path(shard_paths(uri)[0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    recorded = load_manifest(uri).shards[0].sha256
    found = hashlib.sha256(bytes(data)).hexdigest()
    target = (tmp_path / "train").as_uri() if as_uri else uri
    cfg = load_config(None, [f"data.eval={target}"])
    with pytest.raises(DatasetError, match=f"{path}.*{found}.*{recorded}"):
        load_labeled_split(target, cfg)


@pytest.mark.reliability(failure="a shard of data.train replaced by another valid shard of the right schema (a "
                                 "different size) after its manifest was written",
                         response="DatasetError naming the shard and both sizes, from the footer check before any "
                                  "worker starts")
def test_replaced_shard_of_another_size_is_refused_before_training(tmp_path):
    uri = _image_shards(tmp_path / "train")
    path = shard_paths(uri)[1]
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 1), path, compression="none")
    cfg = load_config(None, [f"data.train={uri}"])
    with pytest.raises(DatasetError, match=f"shard {path} is \\d+ bytes, but manifest.json records \\d+"):
        open_train_manifest(cfg)


@pytest.mark.reliability(failure="a manifest listing shard names with '/', '\\' or '..' (pointing readers "
                                 "outside the shard folder)",
                         response="DatasetError at manifest load naming the manifest and the name")
@pytest.mark.parametrize("name", ["../outside.parquet", "sub/shard.parquet", "..\\shard.parquet", "/etc/passwd"])
def test_manifest_shard_names_that_are_paths_are_refused(tmp_path, name):
    uri = _image_shards(tmp_path / "train")
    manifest_path = tmp_path / "train" / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][0]["file"] = name
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="manifest.json lists shard") as info:
        load_manifest(uri)
    assert str(manifest_path) in str(info.value) and repr(name) in str(info.value)


def _bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of all-black rows, compressed as it streams: a few kB for 576 MP.

    Written by hand because Pillow holds a "1" image at a byte per pixel (576 MB here) before it saves one.
    """
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 1000) for _ in range(height // 1000))
    idat += packer.compress(row * (height % 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.reliability(failure="decompression-bomb PNGs: a 24000x24000 1-bit PNG of a few kB (past Pillow's own "
                                 "bomb limit) and a 9000x9000 one (between MAX_IMAGE_PIXELS and Pillow's limit)",
                         response="`dssl data convert --on-bad skip` skips both as too large, naming each file and "
                                  "the 64 MP limit; the good images are converted")
def test_decompression_bomb_png_is_skipped_by_convert(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(src / "good.png")
    (src / "bomb.png").write_bytes(_bilevel_png(24000, 24000))
    (src / "big.png").write_bytes(_bilevel_png(9000, 9000))
    assert (src / "bomb.png").stat().st_size < 200_000
    assert main(["data", "convert", "image", str(src), str(tmp_path / "out"), "--val-fraction", "0"]) == 0
    err = capsys.readouterr().err
    for name in ("bomb.png", "big.png"):
        assert f"skipped {src / name}: " in err
    assert "9000x9000 = 81 MP" in err and f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP limit" in err
    assert "2 files skipped: 2 too large" in err
    assert read_ids(str(tmp_path / "out" / "train")) == ["good.png"]
    with pytest.raises(ImageTooLargeError, match="bomb.png"):
        decode_image((src / "bomb.png").read_bytes(), "RGB", where=str(src / "bomb.png"))


def _write_las(path: Path, xyz: np.ndarray, scale: float = 0.01) -> None:
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = np.array([scale] * 3)
    las = laspy.LasData(header)
    if len(xyz):
        las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.write(path)


@pytest.mark.reliability(failure="LiDAR sources that are not corrupt but unusable: an empty .las (0 points), a "
                                 "scan under --min-points, a .las whose extent would make millions of tiles, a file "
                                 "over --max-file-mb",
                         response="each skipped under its own reason (too few points, extent too large to tile, "
                                  "too large), named in the report; never called corrupt, never an exception")
def test_lidar_convert_reports_each_skip_with_its_reason(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    np.concatenate([rng.uniform(0, 10, (300, 3)), rng.uniform(0, 1, (300, 1))], 1).astype("<f4").tofile(
        src / "good.bin")
    _write_las(src / "empty.las", np.zeros((0, 3)))
    np.zeros((10, 4), "<f4").tofile(src / "tiny.bin")
    wide = rng.uniform(0, 10, (400, 3))
    wide[0, :2], wide[1, :2] = 0.0, 1_000_000.0  # 1000 km square: 20000 x 20000 tiles of 50 m
    _write_las(src / "wide.las", wide)
    (src / "huge.npy").write_bytes(b"\0" * (2 * 1024 * 1024))
    code = main(["data", "convert", "lidar", str(src), str(tmp_path / "out"), "--val-fraction", "0",
                 "--max-file-mb", "1"])
    assert code == 0
    err = capsys.readouterr().err
    assert f"skipped {src / 'empty.las'}: 0 points, fewer than --min-points 256" in err
    assert f"skipped {src / 'tiny.bin'}: 10 points, fewer than --min-points 256" in err
    assert f"skipped {src / 'wide.las'}: " in err and f"MAX_TILES_PER_CLOUD={MAX_TILES_PER_CLOUD}" in err
    assert f"skipped {src / 'huge.npy'}: " in err and "more than --max-file-mb 1" in err
    assert "4 files skipped: 1 too large, 2 too few points, 1 extent too large to tile" in err
    assert "corrupt" not in err
    assert read_ids(str(tmp_path / "out" / "train")) == ["good.bin"]


@pytest.mark.reliability(failure="an audio file over --max-file-mb in the source folder",
                         response="skipped unread as too large, named in the report")
def test_audio_over_the_size_cap_is_skipped_unread(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "short.wav", np.zeros(800, np.float32), 8000)
    sf.write(src / "long.wav", np.zeros(80_000, np.float32), 8000, subtype="FLOAT")  # 320 kB
    report = convert_audio_folder(src, str(tmp_path / "out"), sample_rate=8000, val_fraction=0, max_file_mb=0.1)
    assert [(s.path, s.category) for s in report.skipped] == [(str(src / "long.wav"), "too_large")]
    assert read_ids(str(tmp_path / "out" / "train")) == ["short.wav"]


@pytest.mark.reliability(failure="symlinks in the source folder whose targets resolve outside it (a file link "
                                 "and a folder link)",
                         response="skipped and reported as symlinks out of the source folder; the target is never "
                                  "read into a shard")
def test_symlinks_out_of_the_source_folder_are_skipped(tmp_path):
    outside = tmp_path / "private"
    outside.mkdir()
    secret = _png(Image.new("RGB", (8, 8), (1, 2, 3)))
    (outside / "secret.png").write_bytes(secret)
    src = tmp_path / "src"
    (src / "cls").mkdir(parents=True)
    Image.new("RGB", (8, 8), (9, 9, 9)).save(src / "cls" / "own.png")
    (src / "cls" / "own_link.png").symlink_to(src / "cls" / "own.png")  # inside src: converted
    (src / "cls" / "leak.png").symlink_to(outside / "secret.png")
    (src / "leakdir").symlink_to(outside)
    report = convert_image_folder(src, str(tmp_path / "out"), val_fraction=0)
    skipped = {s.path: s for s in report.skipped}
    assert set(skipped) == {str(src / "cls" / "leak.png"), str(src / "leakdir")}
    assert all(s.category == "outside_source" and "outside the source folder" in s.reason for s in skipped.values())
    assert sorted(read_ids(str(tmp_path / "out" / "train"))) == ["cls/own.png", "cls/own_link.png"]
    table = read_shards(str(tmp_path / "out" / "train"), load_manifest(str(tmp_path / "out" / "train")))[0]
    assert secret not in table["image"].to_pylist()


def _decode_one(data: bytes, channels: int = 1) -> np.ndarray:
    cfg = load_config(None, [f"modality.channels={channels}", "modality.image_size=8"])
    batch = {"id": np.array(["img-0"], dtype=object), "image": np.array([data], dtype=object)}
    return build_modality(cfg).decode(batch)[0].numpy()


def _tiff(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="TIFF")
    return buf.getvalue()


HIGH_BIT = {
    "I;16 PNG": lambda: _png(Image.fromarray(np.full((8, 8), 32768, np.uint16))),
    "I;16B TIFF": lambda: _tiff(Image.fromarray(np.full((8, 8), 32768, ">u2"))),
    "I 32-bit TIFF": lambda: _tiff(Image.fromarray(np.full((8, 8), 2 ** 30, np.int32), mode="I")),
    "F TIFF in [0, 1]": lambda: _tiff(Image.fromarray(np.full((8, 8), 0.5, np.float32), mode="F")),
}


@pytest.mark.reliability(failure="16-bit and 32-bit images (I;16, I;16B, I, F) at mid level, which Pillow's "
                                 "convert() clips to saturated white",
                         response="scaled by their bit range (16-bit: / 257): mid level decodes to ~0.5, the same in "
                                  "the converter and the training decode")
@pytest.mark.parametrize("kind", sorted(HIGH_BIT))
def test_high_bit_images_decode_to_mid_level(kind, tmp_path):
    data = HIGH_BIT[kind]()
    assert Image.open(io.BytesIO(data)).mode == kind.split()[0]
    naive = np.asarray(Image.open(io.BytesIO(data)).convert("L"))  # the bug guarded against: white, or black
    assert naive.min() == naive.max() and int(naive.max()) in (0, 255)
    grey, rgb = _decode_one(data, 1), _decode_one(data, 3)
    assert abs(float(grey.mean()) - 0.5) < 0.01 and np.allclose(rgb, grey[0])
    if kind.endswith("PNG"):  # through the converter: same bytes, same pixels
        src = tmp_path / "src"
        src.mkdir()
        (src / "mid.png").write_bytes(data)
        report = convert_image_folder(src, str(tmp_path / "out"), val_fraction=0)
        assert not report.skipped
        stored = read_shards(str(tmp_path / "out/train"), report.manifests["train"])[0]["image"][0].as_py()
        assert np.array_equal(_decode_one(stored, 1), grey)


TRANSPARENT = {
    "RGBA alpha 0": lambda: Image.new("RGBA", (8, 8), (255, 0, 0, 0)),
    "LA alpha 0": lambda: Image.new("LA", (8, 8), (255, 0)),
    "P with transparency": lambda: _transparent_palette(),
}


def _transparent_palette() -> Image.Image:
    img = Image.new("P", (8, 8), 1)
    img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    img.info["transparency"] = 1
    return img


@pytest.mark.reliability(failure="transparent images (RGBA / LA with alpha 0, a palette with a transparent "
                                 "index), whose hidden colour a naive decode shows",
                         response="composited on ALPHA_BACKGROUND (mid-grey) in the converter and training alike")
@pytest.mark.parametrize("kind", sorted(TRANSPARENT))
def test_transparent_pixels_are_composited_on_the_background(kind):
    data = _png(TRANSPARENT[kind]())
    rgb = _decode_one(data, 3)
    want = np.array(ALPHA_BACKGROUND, np.float32).reshape(3, 1, 1) / 255.0
    assert np.allclose(rgb, np.broadcast_to(want, rgb.shape), atol=1 / 255)
    half = Image.new("RGBA", (8, 8), (255, 255, 255, 128))  # half transparent white: half-way to the background
    assert abs(float(_decode_one(_png(half), 3).mean()) - (255 + ALPHA_BACKGROUND[0]) / 2 / 255) < 0.01

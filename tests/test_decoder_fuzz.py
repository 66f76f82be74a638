"""Every decoder, converter and the shard schema guard meet random and mutated input: nothing but the defined
error may escape, and a converter names every file it skips.

Corrupt input must raise `RecordDecodeError` naming the record (what the bad-record ledger in data/bad_records.py
reports), and the converters skip a file only on `AudioDecodeError` / `PointCloudError`: any other exception would
stop a conversion on one corrupt file, and a hang or a giant allocation would stall a pipeline. Mutations start from real files: truncations (every prefix length), bit flips
(biased to the header), overwritten runs of bytes, and plain random bytes.
"""

from __future__ import annotations

import io
import itertools

import laspy
import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from ray.data._internal.object_extensions.arrow import ArrowPythonObjectType

from distributed_ssl.config import load_config
from distributed_ssl.data.audio_io import AudioDecodeError, read_audio_bytes
from distributed_ssl.data.convert_audio import convert_audio_folder
from distributed_ssl.data.convert_image import convert_image_folder
from distributed_ssl.data.convert_lidar import convert_lidar_folder
from distributed_ssl.data.point_io import PointCloudError, read_point_cloud
from distributed_ssl.data.schemas import (
    EXTENSION_NAME_KEY,
    MODALITY_KEY,
    check_schema,
    modalities,
    schema_for,
)
from distributed_ssl.data.shard_reader import read_shards
from distributed_ssl.modalities.decode_errors import RecordDecodeError
from distributed_ssl.modalities.registry import build_modality

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
AUDIO = ["modality.name=audio", "modality.max_seconds=2.0"]
LIDAR = ["modality.name=lidar", "model.encoder=point_debug", "modality.num_points=64", "modality.num_groups=8",
         "modality.group_size=8"]


@st.composite
def mutations(draw: st.DrawFn, original: bytes) -> bytes:
    """A corrupted copy of `original`: truncated, bit-flipped, partly overwritten, or replaced by noise."""
    n = len(original)
    kind = draw(st.sampled_from(["truncate", "bitflip", "overwrite", "noise"]))
    if kind == "truncate":
        return original[:draw(st.integers(0, n - 1))]
    if kind == "noise":
        return draw(st.binary(max_size=2048))
    data = bytearray(original)
    index = st.one_of(st.integers(0, min(n, 128) - 1), st.integers(0, n - 1))  # headers matter most
    if kind == "bitflip":
        for i, bit in draw(st.lists(st.tuples(index, st.integers(0, 7)), min_size=1, max_size=12)):
            data[i] ^= 1 << bit
    else:
        start = draw(index)
        chunk = draw(st.binary(min_size=1, max_size=64))
        data[start:start + len(chunk)] = chunk
    return bytes(data)


def _image(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def _audio(fmt: str, subtype: str) -> bytes:
    t = np.arange(4000) / 8000.0
    buf = io.BytesIO()
    sf.write(buf, 0.5 * np.sin(2 * np.pi * 440 * t), 8000, format=fmt, subtype=subtype)
    return buf.getvalue()


def _cloud(n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.concatenate([rng.uniform(-5, 5, (n, 3)), rng.uniform(0, 1, (n, 1))], axis=1).astype(np.float32)


def _pcd(binary: bool) -> bytes:
    pts = _cloud(40)
    header = ("VERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
              f"WIDTH {len(pts)}\nHEIGHT 1\nPOINTS {len(pts)}\nDATA {'binary' if binary else 'ascii'}\n")
    body = pts.tobytes() if binary else "".join(" ".join(f"{v:.4f}" for v in p) + "\n" for p in pts).encode()
    return header.encode() + body


def _las(compressed: bool) -> bytes:
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = np.array([0.01, 0.01, 0.01])
    las = laspy.LasData(header)
    pts = _cloud(60).astype(np.float64)
    las.x, las.y, las.z = pts[:, 0], pts[:, 1], pts[:, 2]
    las.intensity = (pts[:, 3] * 60000).astype(np.uint16)
    buf = io.BytesIO()
    las.write(buf, do_compress=compressed)
    return buf.getvalue()


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, _cloud(50))
    return buf.getvalue()


@pytest.mark.reliability(failure="corrupt PNG/JPEG bytes in a shard (truncated, bit-flipped, overwritten, noise)",
                         response="RecordDecodeError naming the record; the ledger skips it")
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_image_decode_raises_only_record_decode_error(fmt):
    modality, original = build_modality(load_config(None)), _image(fmt)

    @FUZZ
    @given(mutations(original))
    def check(data: bytes) -> None:
        batch = {"id": np.array(["img-7"], dtype=object), "image": np.array([data], dtype=object)}
        try:
            out = modality.decode(batch)
        except RecordDecodeError as exc:
            assert "img-7" in str(exc)
            return
        assert out.shape[0] == 1 and bool(out.isfinite().all())

    check()


@pytest.mark.reliability(failure="corrupt WAV/FLAC bytes in a shard, including NaN/inf float samples and "
                                 "nonsense sample rates in the header",
                         response="AudioDecodeError from audio_io; RecordDecodeError naming the record from the "
                                  "audio modality")
@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16")])
def test_audio_decode_raises_only_the_defined_errors(fmt, subtype):
    modality, original = build_modality(load_config(None, AUDIO)), _audio(fmt, subtype)

    @FUZZ
    @given(mutations(original))
    def check(data: bytes) -> None:
        try:
            samples, rate = read_audio_bytes(data, fmt.lower())
            assert np.isfinite(samples).all() and rate > 0
        except AudioDecodeError:
            pass
        batch = {"id": np.array(["clip-3"], dtype=object), "audio": np.array([data], dtype=object),
                 "format": np.array([fmt.lower()], dtype=object), "sample_rate": np.array([8000])}
        try:
            out = modality.decode(batch)
        except RecordDecodeError as exc:
            assert "clip-3" in str(exc)
            return
        assert out.shape[0] == 1 and out.shape[1] <= 2 * 16000

    check()


_POINT_FILES = {".bin": lambda: _cloud(30).tobytes(), ".npy": _npy, ".pcd": lambda: _pcd(True),
                "ascii.pcd": lambda: _pcd(False), ".las": lambda: _las(False), ".laz": lambda: _las(True)}


@pytest.mark.reliability(failure="corrupt point cloud files (KITTI .bin, .npy, binary and ascii .pcd, .las, .laz)",
                         response="PointCloudError naming the file; `dssl data convert` skips or stops as "
                                  "--on-bad says")
@pytest.mark.parametrize("kind", sorted(_POINT_FILES))
def test_point_readers_raise_only_point_cloud_error(kind, tmp_path_factory):
    original = _POINT_FILES[kind]()
    path = tmp_path_factory.mktemp("fuzz") / f"cloud{kind if kind.startswith('.') else '.pcd'}"

    @FUZZ
    @given(mutations(original))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        try:
            cloud = read_point_cloud(path)
        except PointCloudError as exc:
            assert path.name in str(exc)
            return
        assert cloud.points.dtype == np.float32 and cloud.points.shape[1:] == (4,)
        assert np.isfinite(cloud.points).all()

    check()


@pytest.mark.reliability(failure="corrupt point records in a shard (mutated float bytes, wrong num_points)",
                         response="RecordDecodeError naming the record; no NaN/inf reaches a batch")
def test_lidar_decode_raises_only_record_decode_error():
    modality, original = build_modality(load_config(None, LIDAR)), _cloud(30).tobytes()

    @FUZZ
    @given(mutations(original), st.one_of(st.just(30), st.integers(-2, 2**31 - 1)))
    def check(data: bytes, count: int) -> None:
        batch = {"id": np.array(["scan-9"], dtype=object), "points": np.array([data], dtype=object),
                 "num_points": np.array([count], dtype=np.int64)}
        try:
            out = modality.decode(batch)
        except RecordDecodeError as exc:
            assert "scan-9" in str(exc)
            return
        assert out.shape == (1, 64, 4) and bool(out.isfinite().all())

    check()


def test_mutations_really_corrupt():
    """Guard for the strategy itself: most mutated PNGs must fail to decode, or the tests above prove nothing."""
    original, failures = _image("PNG"), []

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(mutations(original))
    def check(data: bytes) -> None:
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
            failures.append(False)
        except Exception:
            failures.append(True)

    check()
    assert sum(failures) > len(failures) // 2


_GOOD_SOURCES = {
    "image": {"good.png": lambda: _image("PNG"), "a.png": lambda: _image("PNG"), "b.jpg": lambda: _image("JPEG")},
    "audio": {"good.wav": lambda: _audio("WAV", "PCM_16"), "a.wav": lambda: _audio("WAV", "FLOAT"),
              "b.flac": lambda: _audio("FLAC", "PCM_16")},
    "lidar": {"good.npy": _npy, "a.las": lambda: _las(False), "b.pcd": lambda: _pcd(True),
              "c.bin": lambda: _cloud(30).tobytes()},
}
_CONVERTERS = {
    "image": lambda src, out: convert_image_folder(src, out, val_fraction=0),
    "audio": lambda src, out: convert_audio_folder(src, out, sample_rate=8000, val_fraction=0),
    "lidar": lambda src, out: convert_lidar_folder(src, out, tile_size=0, min_points=16, val_fraction=0),
}


@pytest.mark.reliability(failure="a source folder of randomly corrupted files (truncated, bit-flipped, overwritten, "
                                 "noise) next to a good one, for every converter",
                         response="`--on-bad skip` never raises: every source file is either converted or named in "
                                  "the report with a reason")
@pytest.mark.parametrize("modality", sorted(_CONVERTERS))
def test_converters_skip_corrupt_files_and_name_each_one(modality, tmp_path_factory):
    originals = {name: make() for name, make in _GOOD_SOURCES[modality].items()}
    corruptible = sorted(n for n in originals if n != next(iter(originals)))
    counter, skips = itertools.count(), []

    @settings(max_examples=12, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def check(data: st.DataObject) -> None:
        run = tmp_path_factory.mktemp(f"convert-{modality}-{next(counter)}")
        src = run / "src"
        src.mkdir()
        good = next(iter(originals))
        (src / good).write_bytes(originals[good])
        for name in corruptible:
            (src / name).write_bytes(data.draw(mutations(originals[name]), label=name))
        report = _CONVERTERS[modality](src, str(run / "out"))
        manifest = report.manifests["train"]
        ids = [i for t in read_shards(str(run / "out/train"), manifest) for i in t["id"].to_pylist()]
        converted = {i.split("#")[0] for i in ids}
        skipped = {s.path for s in report.skipped}
        assert good in converted
        assert all(s.reason and s.category for s in report.skipped)
        for name in originals:
            assert (name in converted) != (str(src / name) in skipped), name
        skips.append(len(skipped))

    check()
    assert sum(skips) > 0  # the mutations did make files the converter had to skip


_ODD_TYPES = [pa.string(), pa.large_string(), pa.binary(), pa.large_binary(), pa.int32(), pa.int64(), pa.float32(),
              pa.float64(), pa.list_(pa.binary()), pa.struct([("x", pa.string())]), pa.dictionary(pa.int32(), pa.string()),
              ArrowPythonObjectType(), pa.list_(ArrowPythonObjectType()), pa.struct([("p", ArrowPythonObjectType())]),
              pa.uuid(), pa.json_()]


@st.composite
def near_schemas(draw: st.DrawFn) -> tuple[str, pa.Schema]:
    """(modality, a schema made from its exact schema by 0-3 mutations: retype, nullability, rename, drop, add,
    swap, an extension-name tag on a field, other modality metadata)."""
    modality = draw(st.sampled_from(modalities()))
    exact = schema_for(modality)
    fields, meta = list(exact), dict(exact.metadata)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["retype", "nullable", "rename", "drop", "add", "swap", "tag", "meta"]))
        i = draw(st.integers(0, len(fields) - 1)) if fields else None
        if i is None and kind != "add" and kind != "meta":
            continue
        if kind == "retype":
            fields[i] = fields[i].with_type(draw(st.sampled_from(_ODD_TYPES)))
        elif kind == "nullable":
            fields[i] = fields[i].with_nullable(not fields[i].nullable)
        elif kind == "rename":
            fields[i] = fields[i].with_name(draw(st.sampled_from(["id", "path", "source", "x", "label"])))
        elif kind == "drop":
            fields.pop(i)
        elif kind == "add":
            fields.append(pa.field(draw(st.sampled_from(["path", "extra"])), draw(st.sampled_from(_ODD_TYPES))))
        elif kind == "swap":
            j = draw(st.integers(0, len(fields) - 1))
            fields[i], fields[j] = fields[j], fields[i]
        elif kind == "tag":  # what Parquet leaves of an extension type the reader has not registered
            fields[i] = fields[i].with_metadata({EXTENSION_NAME_KEY: b"ray.data.arrow_pickled_object"})
        else:
            meta[MODALITY_KEY] = draw(st.sampled_from(modalities())).encode()
    return modality, pa.schema(fields, metadata=meta)


@pytest.mark.reliability(failure="shards whose Arrow schema is near the modality's: columns retyped (large, nested, "
                                 "dictionary, extension types such as Ray's pickled objects), renamed, dropped, "
                                 "added, reordered, nullability flipped, extension names in field metadata",
                         response="check_schema accepts exactly the modality's schema and refuses every other, "
                                  "naming the shard")
def test_schema_guard_accepts_only_the_exact_schema():
    outcomes = []

    @settings(max_examples=80, deadline=None, derandomize=True)
    @given(near_schemas())
    def check(case: tuple[str, pa.Schema]) -> None:
        modality, schema = case
        exact = schema.equals(schema_for(modality), check_metadata=True)
        outcomes.append(exact)
        try:
            check_schema(schema, modality, "shard-00042.parquet")
        except ValueError as exc:
            assert not exact and "shard-00042.parquet" in str(exc)
            return
        assert exact

    check()
    assert any(outcomes) and not all(outcomes)  # both the exact schema and near misses were tried

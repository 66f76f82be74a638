"""Well-formed but wrong inputs: NaN/inf points and samples, empty clouds, wrong dtypes and shapes, shards of
another schema version. Each one meets the defined error for its layer, naming the record, file or shard."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from PIL import Image

from distributed_ssl.config import load_config
from distributed_ssl.data.audio_io import AudioDecodeError, read_audio_bytes
from distributed_ssl.data.manifest import MANIFEST_NAME, DatasetError, load_manifest, shard_paths
from distributed_ssl.data.point_io import PointCloudError, read_point_cloud
from distributed_ssl.data.schemas import VERSION_KEY
from distributed_ssl.data.shard_writer import ShardWriter
from distributed_ssl.data.train_records import open_train_manifest
from distributed_ssl.modalities.decode_errors import RecordDecodeError
from distributed_ssl.modalities.registry import build_modality

LIDAR = ["modality.name=lidar", "model.encoder=point_debug", "modality.num_points=64", "modality.num_groups=8",
         "modality.group_size=8"]


def _points(n: int = 20) -> np.ndarray:
    return np.random.default_rng(0).uniform(-3, 3, (n, 4)).astype(np.float32)


def _lidar_record(points: object, count: int) -> dict[str, np.ndarray]:
    return {"id": np.array(["scan-5"], dtype=object), "points": np.array([points, None], dtype=object)[:1],
            "num_points": np.array([count])}


BAD_POINT_RECORDS = {
    "nan": (lambda: _points() * np.array([1, np.nan, 1, 1], np.float32), 20, "NaN or infinity"),
    "inf": (lambda: _points() * np.array([1, 1, np.inf, 1], np.float32), 20, "NaN or infinity"),
    "overflow": (lambda: np.repeat([[3e38, 0, 0, 0], [-3e38, 0, 0, 0]], 10, axis=0).astype(np.float32), 20,
                 "overflow"),
    "empty": (lambda: np.zeros((0, 4), np.float32), 0, "num_points=0"),
    "float64": (lambda: _points().astype(np.float64), 20, "do not match"),
    "three_columns": (lambda: _points()[:, :3].copy(), 20, "do not match"),
}


@pytest.mark.reliability(failure="point records with NaN/inf, coordinates that overflow, no points, float64 "
                                 "bytes, 3 columns instead of 4, or a non-bytes value",
                         response="RecordDecodeError naming the record; no NaN reaches a batch")
@pytest.mark.parametrize("case", sorted(BAD_POINT_RECORDS))
def test_bad_point_records_raise_record_decode_error(case):
    make, count, reason = BAD_POINT_RECORDS[case]
    with pytest.raises(RecordDecodeError, match=f"scan-5.*{reason}"):
        cfg = load_config(None, LIDAR + ["modality.coord_scale=0.1"])  # centred ±3e38 / 0.1 exceeds float32
        build_modality(cfg).decode(_lidar_record(make().tobytes(), count))


def test_non_bytes_point_record_raises_record_decode_error():
    with pytest.raises(RecordDecodeError, match="scan-5.*not float32 bytes"):
        build_modality(load_config(None, LIDAR)).decode(_lidar_record([1.0, 2.0], 1))


@pytest.mark.reliability(failure="point cloud files with NaN/inf rows, only NaN rows, wrong .npy shapes or dtypes",
                         response="non-finite rows dropped (an all-NaN file becomes an empty cloud that the "
                                  "converter skips); wrong shapes and dtypes raise PointCloudError naming the file")
def test_point_files_with_non_finite_rows_wrong_shapes_and_dtypes(tmp_path):
    pts = _points()
    pts[3, 0], pts[7, 2] = np.nan, -np.inf
    np.save(tmp_path / "holes.npy", pts)
    cloud = read_point_cloud(tmp_path / "holes.npy")
    assert len(cloud.points) == 18 and np.isfinite(cloud.points).all()
    np.save(tmp_path / "all_nan.npy", np.full((5, 4), np.nan, np.float32))
    assert read_point_cloud(tmp_path / "all_nan.npy").points.shape == (0, 4)
    wrong = {"flat.npy": np.zeros(12, np.float32), "two_cols.npy": np.zeros((6, 2), np.float32),
             "cube.npy": np.zeros((2, 3, 4), np.float32), "text.npy": np.array([["a", "b", "c", "d"]]),
             "objects.npy": np.array([[{"x": 1}, 2, 3, 4]], dtype=object)}
    for name, arr in wrong.items():
        np.save(tmp_path / name, arr, allow_pickle=True)
        with pytest.raises(PointCloudError, match=name):
            read_point_cloud(tmp_path / name)
    (tmp_path / "odd.bin").write_bytes(b"\0" * 10)
    with pytest.raises(PointCloudError, match="odd.bin"):
        read_point_cloud(tmp_path / "odd.bin")


def _wav(samples: np.ndarray, rate: int = 8000, subtype: str = "FLOAT") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


@pytest.mark.reliability(failure="audio clips with NaN/inf samples, or a sample rate of 0 or 1 Hz",
                         response="AudioDecodeError; RecordDecodeError naming the record in the audio modality")
def test_non_finite_audio_and_nonsense_rates_are_refused():
    wave = np.sin(np.linspace(0, 100, 4000)).astype(np.float32)
    wave[100] = np.nan
    with pytest.raises(AudioDecodeError, match="NaN"):
        read_audio_bytes(_wav(wave), "wav")
    with pytest.raises(AudioDecodeError, match="sample rate 1 Hz"):
        read_audio_bytes(_wav(np.zeros(100, np.float32), rate=1), "wav")
    batch = {"id": np.array(["clip-1"], dtype=object), "audio": np.array([np.zeros(800, "<f4").tobytes()],
                                                                        dtype=object),
             "format": np.array(["f32le"], dtype=object), "sample_rate": np.array([0])}
    with pytest.raises(RecordDecodeError, match="clip-1.*sample rate 0"):
        build_modality(load_config(None, ["modality.name=audio"])).decode(batch)


def _image_folder(root) -> str:
    writer = ShardWriter(str(root), "image", shard_size=2)
    for i in range(4):
        buf = io.BytesIO()
        Image.new("L", (8, 8), i * 40).save(buf, format="PNG")
        writer.add({"id": f"img-{i}", "image": buf.getvalue(), "format": "png", "label": None, "source": "test"})
    writer.close()
    return str(root)


@pytest.mark.reliability(failure="a shard of another schema version (or another modality) in data.train; a "
                                 "manifest of another schema version; a manifest that is not JSON",
                         response="DatasetError naming the shard or folder, before any worker starts")
def test_shards_and_manifests_of_another_schema_version_are_refused(tmp_path):
    uri = _image_folder(tmp_path / "train")
    cfg = load_config(None, [f"data.train={uri}"])
    assert open_train_manifest(cfg).num_records == 4
    second = shard_paths(uri)[1]
    table = pq.read_table(second)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, VERSION_KEY: b"0"}), second)
    with pytest.raises(DatasetError, match=f"{second}.*schema_version=0"):
        open_train_manifest(cfg)

    manifest_path = tmp_path / "train" / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "schema_version": 2}))
    with pytest.raises(DatasetError, match="schema_version=2"):
        load_manifest(uri)
    manifest_path.write_text("{not json")
    with pytest.raises(DatasetError, match="not a valid manifest"):
        load_manifest(uri)

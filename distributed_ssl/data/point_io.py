"""Point cloud files → float32 [N, 4] (x, y, z, intensity in [0, 1]) plus optional per-point classes.

Formats: KITTI `.bin` (float32 x, y, z, reflectance), `.npy` ([N, 3] or [N, >=4]), `.pcd` (ascii and binary;
binary_compressed is refused with a clear message), `.las` / `.laz` (laspy; LAZ through the lazrs backend,
where the LAS classification code becomes the per-point class).
"""

from __future__ import annotations

import tokenize
from dataclasses import dataclass
from pathlib import Path

import numpy as np

POINT_SUFFIXES = {".bin", ".npy", ".pcd", ".las", ".laz"}
AERIAL_SUFFIXES = {".las", ".laz"}  # large survey tiles: cut into ground tiles by the converter


class PointCloudError(ValueError):
    """A point cloud file could not be read; the message names the file."""


@dataclass
class PointCloud:
    points: np.ndarray  # float32 [N, 4]
    point_labels: np.ndarray | None = None  # uint8 [N]


def normalise_intensity(values: np.ndarray) -> np.ndarray:
    """Intensities come as [0, 1] floats (KITTI), 8-bit or 16-bit integers (PCD, LAS); map all to [0, 1]."""
    values = np.asarray(values, dtype=np.float32)
    top = float(values.max()) if values.size else 0.0
    if top > 255.0:
        return values / 65535.0
    if top > 1.0:
        return values / 255.0
    return values


def _with_intensity(xyz: np.ndarray, intensity: np.ndarray | None) -> np.ndarray:
    out = np.zeros((len(xyz), 4), dtype=np.float32)
    out[:, :3] = xyz
    if intensity is not None:
        out[:, 3] = normalise_intensity(intensity)
    return out


def read_kitti_bin(path: Path) -> PointCloud:
    raw = np.fromfile(path, dtype="<f4")
    if raw.size % 4:
        raise PointCloudError(f"{path}: {raw.size * 4} bytes is not a whole number of float32 (x, y, z, r) rows")
    pts = raw.reshape(-1, 4)
    return PointCloud(_with_intensity(pts[:, :3], pts[:, 3]))


def read_npy(path: Path) -> PointCloud:
    # Memory-mapped: a corrupt header's shape larger than the file fails here instead of sizing an allocation.
    arr = np.array(np.load(path, mmap_mode="r", allow_pickle=False))
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise PointCloudError(f"{path}: expected an [N, 3] or [N, 4+] array, got shape {arr.shape}")
    return PointCloud(_with_intensity(arr[:, :3], arr[:, 3] if arr.shape[1] > 3 else None))


_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("I", 1): "i1",
              ("I", 2): "i2", ("I", 4): "i4", ("U", 8): "u8", ("I", 8): "i8"}


def read_pcd(path: Path) -> PointCloud:
    """PCD v0.7 with fields x, y, z and optionally intensity; DATA ascii or binary."""
    data = path.read_bytes()
    header: dict[str, list[str]] = {}
    offset = 0
    while True:
        end = data.find(b"\n", offset)
        if end < 0:
            raise PointCloudError(f"{path}: PCD header has no DATA line")
        line = data[offset:end].decode("ascii", errors="replace").strip()
        offset = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            break
    try:
        fields = header["FIELDS"]
        sizes = [int(s) for s in header["SIZE"]]
        types = header["TYPE"]
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(fields))]
        n = int(header["POINTS"][0]) if "POINTS" in header else int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
    except (KeyError, ValueError, IndexError) as exc:
        raise PointCloudError(f"{path}: incomplete PCD header ({exc})") from exc
    if not {"x", "y", "z"} <= set(fields):
        raise PointCloudError(f"{path}: PCD has fields {fields}, needs x, y and z")
    kind = header["DATA"][0].lower()
    if kind == "ascii":
        table = np.loadtxt(data[offset:].decode("ascii").splitlines(), dtype=np.float64, ndmin=2)
        cols, start = {}, 0
        for name, count in zip(fields, counts, strict=True):
            cols[name] = table[:n, start]
            start += count
    elif kind == "binary":
        try:
            dtype = np.dtype([(f, f"<{_PCD_TYPES[(t.upper(), s)]}", (c,)) if c > 1 else
                              (f, f"<{_PCD_TYPES[(t.upper(), s)]}") for f, s, t, c in zip(fields, sizes, types, counts,
                                                                                           strict=True)])
        except KeyError as exc:
            raise PointCloudError(f"{path}: unsupported PCD field type/size {exc}") from exc
        if len(data) - offset < n * dtype.itemsize:
            raise PointCloudError(f"{path}: PCD body holds {len(data) - offset} bytes, header promises "
                                  f"{n} points of {dtype.itemsize} bytes")
        rec = np.frombuffer(data, dtype=dtype, count=n, offset=offset)
        cols = {name: rec[name] for name in fields}
    else:
        raise PointCloudError(f"{path}: PCD DATA {kind} is not supported (save as ascii or binary)")
    xyz = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)
    intensity = cols.get("intensity")
    keep = np.isfinite(xyz).all(axis=1)  # organised clouds mark missing returns with NaN
    return PointCloud(_with_intensity(xyz[keep], None if intensity is None else intensity[keep]))


LAS_CHUNK_BYTES = 64 * 1024 * 1024  # read in chunks: a corrupt header's point count never sizes an allocation
_VLR_MIN_BYTES, _EVLR_MIN_BYTES = 54, 60  # record headers without payload (LAS 1.4 spec)


def _check_las_header(path: Path) -> None:
    """Refuse record counts the file cannot hold, before laspy loops over them one by one."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(247)
    if len(head) < 227 or head[:4] != b"LASF":
        raise PointCloudError(f"{path}: not a LAS/LAZ file (no LASF header)")
    num_vlrs = int.from_bytes(head[100:104], "little")
    num_evlrs = int.from_bytes(head[243:247], "little") if head[25] >= 4 and len(head) == 247 else 0
    if num_vlrs * _VLR_MIN_BYTES > size or num_evlrs * _EVLR_MIN_BYTES > size:
        raise PointCloudError(f"{path}: LAS header lists {num_vlrs} VLRs and {num_evlrs} EVLRs, more than "
                              f"its {size} bytes can hold")


def read_las(path: Path) -> PointCloud:
    try:
        import laspy
    except ImportError as exc:
        raise ImportError("LAS/LAZ needs laspy and lazrs: pip install 'distributed_ssl[lidar]'") from exc
    _check_las_header(path)
    columns: dict[str, list[np.ndarray]] = {"x": [], "y": [], "z": [], "intensity": [], "classification": []}
    try:
        with laspy.open(path) as reader:
            promised, read = int(reader.header.point_count), 0
            per_chunk = max(1, LAS_CHUNK_BYTES // max(1, reader.header.point_format.size))
            while read < promised:
                want = min(per_chunk, promised - read)
                chunk = reader.read_points(want)
                for name, values in columns.items():
                    values.append(np.asarray(getattr(chunk, name)))
                read += len(chunk)
                if len(chunk) < want:
                    raise PointCloudError(f"{path}: LAS header promises {promised} points, the file holds {read}")
    except PointCloudError:
        raise
    except BaseException as exc:  # laspy's own errors, LazError, and pyo3 panics of the lazrs backend
        if isinstance(exc, (KeyboardInterrupt, SystemExit, MemoryError)):
            raise
        raise PointCloudError(f"{path}: cannot read LAS/LAZ: {type(exc).__name__}: {exc}") from exc
    x, y, z, intensity, cls = (np.concatenate(v) if v else np.zeros(0) for v in columns.values())
    xyz = np.stack([x, y, z], axis=1).astype(np.float64)
    # Survey coordinates (e.g. UTM, ~1e6 m) would lose centimetres in float32: shift to the file's own corner.
    finite = np.isfinite(xyz).all(axis=1)
    if finite.any():
        xyz = xyz - np.floor(xyz[finite].min(axis=0))
    cls = cls.astype(np.uint8)
    return PointCloud(_with_intensity(xyz, intensity), cls if cls.any() else None)


_READERS = {".bin": read_kitti_bin, ".npy": read_npy, ".pcd": read_pcd, ".las": read_las, ".laz": read_las}


def read_point_cloud(path: str | Path) -> PointCloud:
    """Read any supported file; the result keeps only finite points."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise PointCloudError(f"{path}: unknown point cloud format (known: {', '.join(sorted(_READERS))})")
    try:
        cloud = reader(path)
    except (ValueError, OSError, EOFError, UnicodeDecodeError, IndexError, TypeError, OverflowError,
            SyntaxError, tokenize.TokenError) as exc:
        if isinstance(exc, PointCloudError):
            raise
        # what np.load (its header parser tokenizes), np.loadtxt and PCD header parsing raise on corrupt bytes
        raise PointCloudError(f"{path}: cannot read {path.suffix} point cloud: {type(exc).__name__}: {exc}") from exc
    finite = np.isfinite(cloud.points).all(axis=1)
    if not finite.all():
        cloud = PointCloud(cloud.points[finite], None if cloud.point_labels is None else cloud.point_labels[finite])
    return cloud

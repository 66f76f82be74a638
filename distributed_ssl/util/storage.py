"""Every folder is also a URI: local paths and any pyarrow filesystem URI (s3://, gs://, file://).

Credentials and endpoints come from the environment, the way pyarrow and boto read them (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, ...), never from a config. Local paths keep crash-safe writes (temp file + rename); on an
object store a single PUT is already all-or-nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pyarrow.fs as pafs

from distributed_ssl.util.atomic_files import atomic_write_bytes


def is_uri(location: str) -> bool:
    """True for `scheme://...` locations other than local files."""
    return "://" in location and not location.startswith("file://")


def normalize(location: str) -> str:
    """A URI as given (without a trailing '/'); a local path made absolute, so other processes and nodes agree."""
    if is_uri(location):
        return location.rstrip("/")
    if location.startswith("file://"):
        location = location[len("file://"):]
    return os.path.abspath(os.path.expanduser(location))


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return (filesystem, path) for a local path or any URI pyarrow understands."""
    if is_uri(uri):
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), normalize(uri)


def join(base: str, *parts: str) -> str:
    """Join path segments with '/', which every pyarrow filesystem (and every URI) accepts."""
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts if p]])


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return stream.read()


def read_text(fs: pafs.FileSystem, path: str) -> str:
    return read_bytes(fs, path).decode()


def write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write a whole file: atomically (temp + rename) on a local disk, as one object elsewhere."""
    if isinstance(fs, pafs.LocalFileSystem):
        atomic_write_bytes(path, data)
        return
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def write_text(fs: pafs.FileSystem, path: str, text: str) -> None:
    write_bytes(fs, path, text.encode())


def upload(local_path: str | Path, fs: pafs.FileSystem, path: str) -> None:
    """Copy a local file to `path` on `fs` (whole-file semantics as in `write_bytes`)."""
    if isinstance(fs, pafs.LocalFileSystem):
        if os.path.abspath(local_path) != os.path.abspath(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.upload.tmp"
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, path)
        return
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with open(local_path, "rb") as src, fs.open_output_stream(path) as dst:
        shutil.copyfileobj(src, dst, length=8 * 1024 * 1024)


def download(fs: pafs.FileSystem, path: str, local_path: str | Path) -> Path:
    """Copy `path` on `fs` to a local file; returns the local path."""
    local_path = Path(local_path)
    local_path.parent.mkdir(parents=True, exist_ok=True)
    with fs.open_input_stream(path) as src, open(local_path, "wb") as dst:
        shutil.copyfileobj(src, dst, length=8 * 1024 * 1024)
    return local_path


def local_copy(uri: str) -> tuple[Path, bool]:
    """A local file with the content (and the file name) of `uri`: the path itself when local, else a download
    into a fresh temporary folder.

    Returns (path, is_temporary); the caller deletes a temporary's folder when done.
    """
    if not is_uri(uri):
        return Path(normalize(uri)), False
    fs, path = resolve(uri)
    folder = tempfile.mkdtemp(prefix="dssl-")
    return download(fs, path, os.path.join(folder, path.rsplit("/", 1)[-1])), True


def list_files(fs: pafs.FileSystem, path: str) -> list[str]:
    """Paths of the files directly inside `path` (empty when it does not exist), sorted."""
    selector = pafs.FileSelector(path, allow_not_found=True, recursive=False)
    return sorted(info.path for info in fs.get_file_info(selector) if info.type == pafs.FileType.File)


def delete_tree(fs: pafs.FileSystem, path: str) -> None:
    """Delete a folder and everything in it (nothing when it does not exist)."""
    if exists(fs, path):
        fs.delete_dir(path)


def uri_of(fs: pafs.FileSystem, path: str) -> str:
    """The URI for a (filesystem, path) pair, e.g. what Ray reports as a checkpoint's path on S3."""
    if isinstance(fs, pafs.LocalFileSystem):
        return path
    return f"{fs.type_name}://{path}"

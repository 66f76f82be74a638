"""A run's folder, local or on object storage: where every file of a run is read and written.

On a cluster, the driver, the rank-0 worker (on some other node) and a later `--resume` must all see the same
files, so a run dir may be any URI (`s3://bucket/runs/a`) as well as a local path; Ray Train's checkpoints go
to the same place through `ray_storage()`. Nothing is ever written to a local path named after a URI.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from distributed_ssl.util import storage

# The files every run dir holds, by name.
RUN_STATE = "run.json"
CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
ENCODER_FILE = "encoder.pt"
RAY_RUN_NAME = "train"  # Ray Train's run (checkpoints) inside the run dir


class RunDir:
    """Files of one run under `uri` (a local path or a filesystem URI)."""

    def __init__(self, location: str | Path):
        self.uri = storage.normalize(str(location))
        self.fs, self.path = storage.resolve(self.uri)

    def __repr__(self) -> str:
        return f"RunDir({self.uri!r})"

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def child_uri(self, *parts: str) -> str:
        """The URI (or absolute local path) of something inside the run dir."""
        return storage.join(self.uri, *parts)

    def _path(self, name: str) -> str:
        return storage.join(self.path, name)

    def exists(self, name: str = "") -> bool:
        return storage.exists(self.fs, self._path(name) if name else self.path)

    def mkdir(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def read_text(self, name: str) -> str:
        return storage.read_text(self.fs, self._path(name))

    def read_json(self, name: str) -> Any:
        return json.loads(self.read_text(name))

    def write_text(self, name: str, text: str) -> str:
        """Write `name` whole (crash-safe locally); returns its URI."""
        storage.write_text(self.fs, self._path(name), text)
        return self.child_uri(name)

    def write_json(self, name: str, value: Any) -> str:
        return self.write_text(name, json.dumps(value, indent=2))

    def save_torch(self, name: str, obj: Any) -> str:
        """`torch.save` of `obj` as `name`, never leaving a torn file."""
        import torch

        buffer = io.BytesIO()
        torch.save(obj, buffer)
        storage.write_bytes(self.fs, self._path(name), buffer.getvalue())
        return self.child_uri(name)

    def upload(self, local_path: str | Path, name: str) -> str:
        storage.upload(local_path, self.fs, self._path(name))
        return self.child_uri(name)

    def list(self, name: str = "") -> list[str]:
        """Names of the files directly inside `name` (a sub-folder) or the run dir itself."""
        folder = self._path(name) if name else self.path
        return [p.rsplit("/", 1)[-1] for p in storage.list_files(self.fs, folder)]

    def delete(self, name: str = "") -> None:
        """Delete a file, a sub-folder, or (no name) the whole run dir."""
        target = self._path(name) if name else self.path
        info = self.fs.get_file_info(target)
        if info.type == pafs.FileType.File:
            self.fs.delete_file(target)
        elif info.type == pafs.FileType.Directory:
            self.fs.delete_dir(target)

    def delete_contents(self, keep: tuple[str, ...] = ()) -> None:
        """Delete everything inside the run dir except the top-level entries named in `keep`."""
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=False)
        for info in self.fs.get_file_info(selector):
            name = info.path.rstrip("/").rsplit("/", 1)[-1]
            if name not in keep:
                self.delete(name)

    @contextlib.contextmanager
    def local_file(self, name: str) -> Iterator[Path]:
        """A local path holding `name`: the file itself on a local disk, else a temporary download."""
        path, temporary = storage.local_copy(self.child_uri(name))
        try:
            yield path
        finally:
            if temporary:
                shutil.rmtree(path.parent, ignore_errors=True)

    def ray_storage(self) -> dict[str, Any]:
        """`storage_path` / `storage_filesystem` for Ray Train's and Ray Tune's RunConfig."""
        if self.is_local:
            return {"storage_path": self.path}
        return {"storage_path": self.path, "storage_filesystem": self.fs}

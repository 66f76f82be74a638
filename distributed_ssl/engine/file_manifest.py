"""Signed lists of files and their sha256: the trust boundary in front of every pickle dssl loads back.

DeepSpeed restores its shards with `torch.load(weights_only=False)` and Ray Tune restores its state with
cloudpickle: unpickling runs code, so a file planted or changed in a run dir would run on the next resume.
dssl writes a manifest next to what it saves and checks it before anything is unpickled. With
`DSSL_CHECKPOINT_KEY` set, manifests carry an HMAC-SHA256 over their content and one without a valid signature is
refused, so only a holder of the key can make a directory loadable; without the key the sha256 list still catches
changed, missing and added files, but anyone who can write the directory can also rewrite the manifest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

KEY_ENV = "DSSL_CHECKPOINT_KEY"
FORMAT_VERSION = 1
_CHUNK = 1 << 20


class ManifestError(RuntimeError):
    """A directory's manifest does not vouch for its files: nothing in it may be unpickled. The message names the
    directory and the file."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def signing_key() -> bytes | None:
    """`$DSSL_CHECKPOINT_KEY` as bytes, or None when unset or empty."""
    value = os.environ.get(KEY_ENV, "")
    return value.encode() if value else None


def _body_bytes(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(manifest: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """The manifest with `signature` set: HMAC-SHA256 of its canonical JSON under `key`, or None without one."""
    signature = hmac.new(key, _body_bytes(manifest), hashlib.sha256).hexdigest() if key else None
    return {**manifest, "signature": signature}


def build_manifest(root: str | Path, files: list[str], **fields: Any) -> dict[str, Any]:
    """A signed manifest of `files` (paths relative to `root`, '/'-separated) plus `fields`."""
    listed = {name: sha256_file(Path(root, name)) for name in sorted(files)}
    return sign({"format": FORMAT_VERSION, **fields, "files": listed}, signing_key())


def read_manifest(path: Path, where: str) -> dict[str, Any]:
    """Parse a manifest file (JSON only: reading it unpickles nothing) and check its signature."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{where}: manifest {path.name} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ManifestError(f"{where}: manifest {path.name} has no file list")
    check_signature(manifest, path.name, where)
    return manifest


def check_signature(manifest: dict[str, Any], name: str, where: str) -> None:
    """With a key set, the manifest must carry a valid HMAC under it; without one, nothing is checked here."""
    key = signing_key()
    if key is None:
        return
    signature = manifest.get("signature")
    if not signature:
        raise ManifestError(f"{where}: manifest {name} is not signed, but {KEY_ENV} is set: refusing to load it")
    expected = sign(manifest, key)["signature"]
    if not hmac.compare_digest(str(signature), expected):
        raise ManifestError(f"{where}: manifest {name} has a bad signature (written without {KEY_ENV} or under "
                            "another key, or edited): refusing to load it")


def check_listed_files(root: Path, manifest: dict[str, Any], name: str, where: str) -> None:
    """Every file the manifest lists exists under `root` with the listed sha256."""
    for rel, expected in manifest["files"].items():
        path = root / rel
        if not path.is_file():
            raise ManifestError(f"{where}: {rel} is listed in {name} but missing")
        if sha256_file(path) != expected:
            raise ManifestError(f"{where}: {rel} does not match its sha256 in {name} (changed since dssl wrote "
                                "it): refusing to load it")


def files_under(root: str | Path, skip: set[str] | None = None) -> list[str]:
    """Every regular file under `root`, as '/'-separated relative paths, except names in `skip`."""
    root = Path(root)
    skip = skip or set()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if (p.is_file() or p.is_symlink()) and p.name not in skip)

"""Per-rank manifests of a DeepSpeed checkpoint, checked before DeepSpeed unpickles a single shard.

Each Ray Train rank writes its part of a checkpoint into its own local directory and Ray merges the ranks'
directories into one, so each rank lists only its own files, in `dssl_manifest.rank{R}.json`. Rank 0 also
records how many ranks wrote. A merged directory is trusted only when every rank's manifest is there and
verifies (see file_manifest.py for the signature), every listed file matches its sha256, and every file in
the directory is listed by exactly one manifest: a file added next to the shards (say `evil.pt`) is refused
just like a changed one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from distributed_ssl.engine.file_manifest import (
    ManifestError,
    build_manifest,
    check_listed_files,
    files_under,
    read_manifest,
)
from distributed_ssl.util.atomic_files import atomic_write_text

MANIFEST_PREFIX = "dssl_manifest.rank"
MANIFEST_PATTERN = re.compile(r"dssl_manifest\.rank(\d+)\.json")
# Written into checkpoint directories by Ray itself (JSON metadata, never unpickled by dssl or DeepSpeed).
RAY_BOOKKEEPING = {".metadata.json"}


def manifest_name(rank: int) -> str:
    return f"{MANIFEST_PREFIX}{rank}.json"


def write_manifest(directory: str | Path, rank: int, world_size: int) -> Path:
    """List (and sign, with the key set) every file this rank wrote into `directory`; call it last."""
    directory = Path(directory)
    files = [f for f in files_under(directory) if not MANIFEST_PATTERN.fullmatch(Path(f).name)]
    fields = {"kind": "dssl-checkpoint", "rank": rank}
    if rank == 0:
        fields["world_size"] = world_size
    manifest = build_manifest(directory, files, **fields)
    return atomic_write_text(directory / manifest_name(rank), json.dumps(manifest, indent=1))


def _rank_manifests(directory: Path, where: str) -> dict[int, dict]:
    found = {}
    for path in sorted(directory.iterdir()):
        match = MANIFEST_PATTERN.fullmatch(path.name)
        if not match:
            continue
        manifest = read_manifest(path, where)
        rank = int(match.group(1))
        if manifest.get("rank") != rank or manifest.get("kind") != "dssl-checkpoint":
            raise ManifestError(f"{where}: manifest {path.name} says rank {manifest.get('rank')!r}, "
                                f"kind {manifest.get('kind')!r}")
        found[rank] = manifest
    return found


def verify_checkpoint(directory: str | Path) -> None:
    """Raise `ManifestError` unless `directory` is exactly what dssl's ranks wrote into it (see module doc).

    Reads only JSON manifests and hashes bytes: nothing is unpickled until this returns.
    """
    directory = Path(directory)
    where = f"checkpoint {directory}"
    manifests = _rank_manifests(directory, where)
    if 0 not in manifests:
        raise ManifestError(f"{where}: no {manifest_name(0)} (not written by dssl, or torn): refusing to load it")
    world = manifests[0].get("world_size")
    if not isinstance(world, int) or world < 1 or set(manifests) != set(range(world)):
        raise ManifestError(f"{where}: {manifest_name(0)} says {world!r} ranks wrote it, manifests found for "
                            f"ranks {sorted(manifests)}")
    owner: dict[str, str] = {}
    for rank, manifest in sorted(manifests.items()):
        for rel in manifest["files"]:
            if rel in owner:
                raise ManifestError(f"{where}: {rel} is listed by both {owner[rel]} and {manifest_name(rank)}")
            owner[rel] = manifest_name(rank)
        check_listed_files(directory, manifest, manifest_name(rank), where)
    for rel in files_under(directory, skip=RAY_BOOKKEEPING):
        if rel not in owner and not MANIFEST_PATTERN.fullmatch(rel):
            raise ManifestError(f"{where}: {rel} is not in the manifest of any rank (added after dssl wrote the "
                                "checkpoint): refusing to load it")

"""DeepSpeed checkpoints through Ray Train: every rank saves its shard, Ray merges them into one directory.

Each rank's part carries a manifest of its files (engine/checkpoint_manifest.py), verified before DeepSpeed
unpickles anything: a checkpoint directory is trusted only as far as dssl wrote it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from distributed_ssl.engine.checkpoint_manifest import verify_checkpoint, write_manifest
from distributed_ssl.util.atomic_files import atomic_write_text

STATE_TAG = "state"
META_FILE = "meta.json"


def save_checkpoint(engine: Any, meta: dict[str, Any], rank: int) -> str:
    """Write this rank's part of the checkpoint into a fresh local directory and return it.

    Rank 0 also writes `meta.json` (step counters, run ids), so a merged directory is complete only
    when it holds that file and every rank's DeepSpeed shard. Each rank's manifest of its files comes last.
    """
    out = tempfile.mkdtemp(prefix="dssl-ckpt-")
    engine.save_checkpoint(out, tag=STATE_TAG, client_state={"meta": meta})
    if rank == 0:  # written atomically, before the manifest: the two mark rank 0's part complete
        atomic_write_text(Path(out, META_FILE), json.dumps(meta))
    write_manifest(out, rank, _world_size())
    return out


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def load_checkpoint(engine: Any, directory: str) -> dict[str, Any]:
    """Verify the checkpoint's manifests (raises `ManifestError`), then restore model, optimizer and counters;
    returns the saved meta."""
    verify_checkpoint(directory)
    path, client_state = engine.load_checkpoint(directory, tag=STATE_TAG, load_optimizer_states=True,
                                                load_lr_scheduler_states=False)
    if path is None:
        raise RuntimeError(f"checkpoint {directory} has no DeepSpeed state under tag {STATE_TAG!r}")
    meta_file = Path(directory, META_FILE)
    return json.loads(meta_file.read_text()) if meta_file.exists() else client_state["meta"]


def is_complete_checkpoint(directory: str | Path) -> bool:
    """Complete = rank 0's DeepSpeed model state and `meta.json`, which rank 0 writes atomically after its shard.

    (Whether it can be trusted is `verify_checkpoint`'s question, asked at load: a checkpoint of an older dssl
    without manifests is complete, and refused there with a message, not deleted here.)
    """
    directory = Path(directory)
    return (directory / META_FILE).is_file() and any((directory / STATE_TAG).glob("*model_states.pt"))


def latest_complete_checkpoint(root: str | Path) -> Path | None:
    """The newest complete `checkpoint_*` directory under `root` (Ray Train names sort by time), or None.

    A directory torn by a crash mid-copy lacks `meta.json` or the model state and is passed over.
    """
    candidates = sorted(p for p in Path(root).glob("checkpoint_*") if p.is_dir())
    return next((p for p in reversed(candidates) if is_complete_checkpoint(p)), None)


def remove_torn_checkpoints(root: str | Path) -> list[Path]:
    """Delete incomplete `checkpoint_*` directories under `root`; returns them.

    Ray Train registers a checkpoint only after it is fully copied, so a restore never picks a torn one, but its
    retention (`run.keep_checkpoints`) deletes only registered ones: a copy cut off by a crash would stay forever.
    Call only while no run writes into `root` (e.g. before `dssl train --resume`).
    """
    import shutil

    torn = [p for p in sorted(Path(root).glob("checkpoint_*")) if p.is_dir() and not is_complete_checkpoint(p)]
    for path in torn:
        shutil.rmtree(path, ignore_errors=True)
    return torn

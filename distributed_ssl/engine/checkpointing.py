"""DeepSpeed checkpoints through Ray Train: every rank saves its shard, Ray merges them into one directory."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

STATE_TAG = "state"
META_FILE = "meta.json"


def save_checkpoint(engine: Any, meta: dict[str, Any], rank: int) -> str:
    """Write this rank's part of the checkpoint into a fresh local directory and return it.

    Rank 0 also writes `meta.json` (step counters, run ids), so a merged directory is complete only
    when it holds that file and every rank's DeepSpeed shard.
    """
    out = tempfile.mkdtemp(prefix="dssl-ckpt-")
    engine.save_checkpoint(out, tag=STATE_TAG, client_state={"meta": meta})
    if rank == 0:
        Path(out, META_FILE).write_text(json.dumps(meta))
    return out


def load_checkpoint(engine: Any, directory: str) -> dict[str, Any]:
    """Restore model, optimizer and counters; returns the saved meta."""
    path, client_state = engine.load_checkpoint(directory, tag=STATE_TAG, load_optimizer_states=True,
                                                load_lr_scheduler_states=False)
    if path is None:
        raise RuntimeError(f"checkpoint {directory} has no DeepSpeed state under tag {STATE_TAG!r}")
    meta_file = Path(directory, META_FILE)
    return json.loads(meta_file.read_text()) if meta_file.exists() else client_state["meta"]

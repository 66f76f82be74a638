"""A process SIGKILLed in the middle of writing a checkpoint or a run file damages nothing that was complete.

Each test starts a real subprocess that writes through the project's own code, holds it mid-write (a writer that
blocks after its first bytes), kills it with SIGKILL, and then reads back what is on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from distributed_ssl.engine.checkpointing import (
    META_FILE,
    STATE_TAG,
    latest_complete_checkpoint,
    remove_torn_checkpoints,
)
from distributed_ssl.util.atomic_files import atomic_torch_save, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def _kill_mid_write(script: str) -> None:
    """Run `script` until it prints MID-WRITE, then SIGKILL it."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline()
        assert line.strip() == "MID-WRITE", f"writer did not reach the write: {line!r}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.stdout.close()


@pytest.mark.reliability(failure="SIGKILL while encoder.pt (or summary.json, config.yaml, run.json) is being "
                                 "rewritten",
                         response="the previous file stays intact and loadable; the torn temporary is removed "
                                  "by the next write")
def test_kill_during_encoder_save_keeps_the_previous_file(tmp_path):
    target = tmp_path / "encoder.pt"
    good = {"weight": torch.arange(6.0).reshape(2, 3)}
    atomic_torch_save(good, target)
    _kill_mid_write(f"""
        import sys, time, torch
        from distributed_ssl.util.atomic_files import atomic_write

        def slow_save(f):
            torch.save({{"weight": torch.zeros(512, 512)}}, f)  # most of the new file is already out
            f.flush()
            print("MID-WRITE", flush=True)
            time.sleep(120)

        atomic_write({str(target)!r}, slow_save)
    """)
    assert torch.equal(torch.load(target, weights_only=True)["weight"], good["weight"])
    stale = list(tmp_path.glob(".encoder.pt.*.tmp"))
    assert len(stale) == 1 and stale[0].stat().st_size > 512 * 512 * 4  # the torn write was really under way
    atomic_write_text(tmp_path / "summary.json", "{}")
    atomic_torch_save({"weight": torch.ones(1)}, target)
    assert not list(tmp_path.glob(".encoder.pt.*.tmp"))
    assert torch.equal(torch.load(target, weights_only=True)["weight"], torch.ones(1))


def _complete_checkpoint(root: Path, name: str, step: int) -> Path:
    ckpt = root / name
    (ckpt / STATE_TAG).mkdir(parents=True)
    torch.save({"step": step}, ckpt / STATE_TAG / "mp_rank_00_model_states.pt")
    atomic_write_text(ckpt / META_FILE, json.dumps({"global_step": step}))
    return ckpt


@pytest.mark.reliability(failure="SIGKILL while a checkpoint directory is being written (DeepSpeed shards out, "
                                 "meta.json not yet)",
                         response="the earlier checkpoint is untouched; restore picks the newest complete one; "
                                  "`dssl train --resume` deletes the torn directory")
def test_kill_during_checkpoint_write_restores_the_last_complete_one(tmp_path):
    good = _complete_checkpoint(tmp_path, "checkpoint_2026-01-01_00-00-01.000000", step=10)
    before = {p: p.read_bytes() for p in good.rglob("*") if p.is_file()}
    torn = tmp_path / "checkpoint_2026-01-01_00-00-02.000000"
    _kill_mid_write(f"""
        import time, torch
        from pathlib import Path
        from distributed_ssl.util.atomic_files import atomic_write

        state = Path({str(torn)!r}) / {STATE_TAG!r}
        state.mkdir(parents=True)
        torch.save({{"step": 20}}, state / "mp_rank_00_model_states.pt")

        def slow_meta(f):
            f.write(b'{{"global_step": 2')
            f.flush()
            print("MID-WRITE", flush=True)
            time.sleep(120)

        atomic_write(state.parent / {META_FILE!r}, slow_meta)
    """)
    assert latest_complete_checkpoint(tmp_path) == good
    assert {p: p.read_bytes() for p in good.rglob("*") if p.is_file()} == before
    assert not (torn / META_FILE).exists()
    assert remove_torn_checkpoints(tmp_path) == [torn] and not torn.exists() and good.exists()
    newer = _complete_checkpoint(tmp_path, "checkpoint_2026-01-01_00-00-03.000000", step=30)
    assert latest_complete_checkpoint(tmp_path) == newer

"""The trust boundary in front of pickles: checkpoint manifests, tensors-only encoder files.

Two real DeepSpeed ranks (gloo, CPU, ZeRO-2: each rank writes its own optimizer shard) save through
`save_checkpoint`; their directories are merged the way Ray Train merges them, then every rank loads copies of
the merged checkpoint with one thing changed. A planted pickle that would create a marker file when unpickled
proves that nothing was unpickled before the manifest check refused the checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from distributed_ssl.engine.file_manifest import KEY_ENV, sha256_file, sign
from distributed_ssl.util.encoder_file import EncoderFileError, load_encoder_state
from tests.conftest import free_port
from tests.test_ema_teacher import _TinyMethod

KEY = "test-checkpoint-key"


class _MarkerPickle:
    """Unpickling this creates the file `path`: the proof that something was unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _tamper(name: str, ckpt: Path, marker: str) -> None:
    """Apply scenario `name` to the merged checkpoint copy `ckpt` (run on rank 0 only)."""
    model_states = next(ckpt.glob("state/*model_states.pt"))
    if name == "flipped_byte":
        data = bytearray(model_states.read_bytes())
        data[len(data) // 2] ^= 0x01
        model_states.write_bytes(bytes(data))
    elif name == "model_states_replaced":
        torch.save(_MarkerPickle(marker), model_states)
    elif name == "extra_file":
        torch.save(_MarkerPickle(marker), ckpt / "evil.pt")
    elif name == "missing_rank1_manifest":
        (ckpt / "dssl_manifest.rank1.json").unlink()
    elif name in ("resigned_without_key", "resigned_with_other_key"):
        # What someone without the key can do: change a shard and rewrite rank 0's manifest to match it.
        torch.save(_MarkerPickle(marker), model_states)
        path = ckpt / "dssl_manifest.rank0.json"
        manifest = json.loads(path.read_text())
        manifest["files"] = {rel: sha256_file(ckpt / rel) for rel in manifest["files"]}
        path.write_text(json.dumps(sign(manifest, b"another-key" if name.endswith("other_key") else None)))


SCENARIOS = ["intact", "flipped_byte", "model_states_replaced", "extra_file", "missing_rank1_manifest",
             "resigned_without_key", "resigned_with_other_key"]


def _train_save_and_load(rank: int, out: Path) -> dict[str, str]:
    from distributed_ssl.engine.checkpointing import load_checkpoint, save_checkpoint
    from distributed_ssl.engine.deepspeed_ops import initialize_engine

    method = _TinyMethod()
    optimizer = torch.optim.AdamW(method.trainable_module().parameters(), lr=0.05)
    config = {"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1, "train_batch_size": 8,
              "zero_optimization": {"stage": 2}, "zero_allow_untested_optimizer": True,
              "zero_force_ds_cpu_optimizer": False, "steps_per_print": 10**9}
    engine, _ = initialize_engine(method, optimizer, config)
    gen = torch.Generator().manual_seed(rank)
    batch = {"x": torch.randn(4, 16, generator=gen), "y": torch.randn(4, 8, generator=gen)}
    engine.backward(engine(batch)["loss"])
    engine.step()
    part = save_checkpoint(engine, {"global_step": 1, "epoch": 0}, rank)
    shutil.copytree(part, out / "merged", dirs_exist_ok=True)  # what Ray Train does with every rank's directory
    outcomes = {}
    for name in SCENARIOS:
        torch.distributed.barrier()
        if rank == 0:
            shutil.copytree(out / "merged", out / name)
            _tamper(name, out / name, str(out / f"marker-{name}"))
        torch.distributed.barrier()
        try:
            outcomes[name] = f"loaded step {load_checkpoint(engine, str(out / name))['global_step']}"
        except Exception as exc:
            outcomes[name] = f"{type(exc).__name__}: {exc}"
    return outcomes


def _rank_main(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    outcomes = _train_save_and_load(rank, Path(out_dir))
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(outcomes))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
@pytest.mark.reliability(failure="a DeepSpeed checkpoint changed after dssl wrote it: one flipped byte, a shard "
                                 "replaced by a code-running pickle, an extra evil.pt, a rank's manifest "
                                 "missing, manifests re-signed without DSSL_CHECKPOINT_KEY or with another key",
                         response="refused before anything is unpickled (the planted pickle's marker never "
                                  "appears) with an error naming the checkpoint and the file; the intact one loads")
def test_checkpoint_is_verified_before_deepspeed_unpickles_it(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    mp.spawn(_rank_main, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    merged = sorted(p.name for p in (tmp_path / "merged").iterdir())
    assert "dssl_manifest.rank0.json" in merged and "dssl_manifest.rank1.json" in merged
    assert json.loads((tmp_path / "merged" / "dssl_manifest.rank0.json").read_text())["signature"]
    expected = {"flipped_byte": "does not match its sha256", "model_states_replaced": "does not match its sha256",
                "extra_file": "evil.pt is not in the manifest", "missing_rank1_manifest": "says 2 ranks",
                "resigned_without_key": "is not signed", "resigned_with_other_key": "bad signature"}
    for outcomes in ranks:
        assert outcomes["intact"] == "loaded step 1"
        for name, reason in expected.items():
            assert outcomes[name].startswith("ManifestError: checkpoint "), outcomes[name]
            assert str(tmp_path / name) in outcomes[name] and reason in outcomes[name], outcomes[name]
    assert "model_states.pt" in ranks[0]["flipped_byte"]
    for name in SCENARIOS:
        assert not (tmp_path / f"marker-{name}").exists(), f"{name}: the planted pickle was unpickled"
    # The planted pickle is live: unpickling it for real does create the marker.
    torch.load(tmp_path / "model_states_replaced" / "state" / "mp_rank_00_model_states.pt", weights_only=False)
    assert (tmp_path / "marker-model_states_replaced").exists()


@pytest.mark.reliability(failure="an encoder.pt (model.init_from, dssl eval, dssl data embed, retrain probes) "
                                 "replaced by a pickle that runs code",
                         response="refused by the tensors-only loader (weights_only=True) naming the file; the "
                                  "code never runs")
def test_encoder_file_loads_tensors_only_and_refuses_code(tmp_path):
    from distributed_ssl.engine.warm_start import load_encoder_weights
    from distributed_ssl.util.atomic_files import atomic_torch_save

    good = tmp_path / "encoder.pt"
    atomic_torch_save({"weight": torch.arange(4.0)}, good)
    assert torch.equal(load_encoder_state(good)["weight"], torch.arange(4.0))
    evil, marker = tmp_path / "evil" / "encoder.pt", tmp_path / "marker"
    evil.parent.mkdir()
    torch.save(_MarkerPickle(str(marker)), evil)
    with pytest.raises(EncoderFileError, match=str(evil)):
        load_encoder_state(evil)
    with pytest.raises(EncoderFileError, match="not a plain tensor state dict"):
        load_encoder_weights(_TinyMethod(), str(evil))
    assert not marker.exists()
    torch.save({"weight": [1, 2]}, good)
    with pytest.raises(EncoderFileError, match="does not hold an encoder state dict"):
        load_encoder_state(good)

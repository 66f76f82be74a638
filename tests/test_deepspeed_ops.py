"""What starting a DeepSpeed engine costs: no JIT build of an inference-only op, no import of the compiler.

Each check runs in a fresh interpreter, since what a process has imported or probed before cannot be undone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]

ENGINE_START = """
import json, os, sys
import torch
from distributed_ssl.engine.deepspeed_ops import (MUON_OPTIMIZER_MODULE, answer_muon_checks_without_importing_muon,
                                                  initialize_engine)

torch.distributed.init_process_group("gloo", rank=0, world_size=1)
losses = {}
for stage in (0, 1, 2, 3):
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    engine, _ = initialize_engine(model, optimizer, {
        "train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": stage},
        "zero_allow_untested_optimizer": True, "zero_force_ds_cpu_optimizer": False})
    first = None
    for _ in range(3):
        loss = engine(torch.ones(2, 8)).pow(2).sum()
        first = loss.item() if first is None else first
        engine.backward(loss)
        engine.step()
    losses[stage] = (first, loss.item())
import deepspeed.ops
from deepspeed.runtime.zero.muon.original_muon import muon_update
try:
    muon_update()
    called = "ran"
except RuntimeError as exc:
    called = str(exc)

class NotTorch:  # an optimizer from elsewhere keeps DeepSpeed's real modules
    pass
del sys.modules[MUON_OPTIMIZER_MODULE]
answer_muon_checks_without_importing_muon(NotTorch())
print(json.dumps({"losses": losses, "inductor": "torch._inductor.compile_fx" in sys.modules,
                  "shm_op": deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"], "muon_update": called,
                  "stand_in_for_other": MUON_OPTIMIZER_MODULE in sys.modules}))
"""


def test_engines_of_every_stage_train_without_the_shm_op_or_the_compiler():
    env = {"PATH": "/usr/bin:/bin", "LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", ENGINE_START], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    last = [end for _, end in result["losses"].values()]
    assert len(last) == 4 and max(last) - min(last) < 1e-5, result  # every ZeRO stage takes the same steps
    assert all(end < first for first, end in result["losses"].values()), result
    assert result["inductor"] is False and result["shm_op"] is False
    assert "never builds Muon" in result["muon_update"]
    assert result["stand_in_for_other"] is False

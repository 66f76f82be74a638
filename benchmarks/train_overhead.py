"""Training-step overhead: TorchTrainer + DeepSpeed vs a plain single-process PyTorch loop.

Same model (SimCLR, tiny ViT), same synthetic batch, same AdamW; the data pipeline is left out so the
numbers isolate what Ray Train and DeepSpeed add per step. Prints a table with the ratio to the plain loop.

    python benchmarks/train_overhead.py [--steps 30] [--batch-size 64] [--encoder vit_tiny]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from distributed_ssl.config import load_config
from distributed_ssl.engine.deepspeed_config import build_deepspeed_config
from distributed_ssl.engine.param_groups import param_groups
from distributed_ssl.methods.registry import build_method


def _batch(batch_size: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"view_0": torch.randn(batch_size, 3, 32, 32, generator=g),
            "view_1": torch.randn(batch_size, 3, 32, 32, generator=g)}


def plain_loop(overrides: list[str], steps: int, batch_size: int, warmup: int = 3) -> float:
    torch.set_num_threads(1)  # a Ray Train worker with 1 CPU gets one thread too
    cfg = load_config(None, overrides)
    torch.manual_seed(0)
    method = build_method(cfg)
    opt = torch.optim.AdamW(param_groups(method, 0.05), lr=1e-3)
    batch = _batch(batch_size)
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        opt.zero_grad()
        method(batch)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(method.parameters(), 1.0)
        opt.step()
    return (time.perf_counter() - t0) / steps


def _worker(config: dict) -> None:
    import deepspeed
    import ray.train

    cfg = load_config(None, config["overrides"])
    torch.manual_seed(0)
    method = build_method(cfg)
    world = ray.train.get_context().get_world_size()
    opt = torch.optim.AdamW(param_groups(method, 0.05), lr=1e-3)
    engine, *_ = deepspeed.initialize(model=method, optimizer=opt, config=build_deepspeed_config(cfg, world))
    batch = _batch(config["batch_size"])
    steps, warmup = config["steps"], 3
    for i in range(warmup + steps):
        if i == warmup:
            torch.distributed.barrier()
            t0 = time.perf_counter()
        loss = engine(batch)["loss"]
        engine.backward(loss)
        engine.step()
    torch.distributed.barrier()
    if ray.train.get_context().get_world_rank() == 0:
        Path(config["out"]).write_text(json.dumps({"s_per_step": (time.perf_counter() - t0) / steps}))


def ray_deepspeed(overrides: list[str], workers: int, steps: int, batch_size: int) -> float:
    import ray.train
    from ray.train.torch import TorchTrainer

    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "timing.json")
        TorchTrainer(_worker, train_loop_config={"overrides": overrides, "steps": steps, "batch_size": batch_size,
                                                 "out": out},
                     scaling_config=ray.train.ScalingConfig(num_workers=workers),
                     run_config=ray.train.RunConfig(storage_path=tmp, name="bench")).fit()
        return json.loads(Path(out).read_text())["s_per_step"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--encoder", default="vit_tiny")
    args = p.parse_args()
    import ray

    base = [f"model.encoder={args.encoder}", f"train.batch_size={args.batch_size}"]
    rows = [("plain PyTorch loop, 1 process [baseline]", 1, plain_loop(base, args.steps, args.batch_size))]
    ray.init(address="local", num_cpus=4, object_store_memory=256 * 1024**2, include_dashboard=False, log_to_driver=False)
    for stage in (0, 2, 3):
        overrides = base + [f"deepspeed.zero_stage={stage}"]
        rows.append((f"TorchTrainer + DeepSpeed ZeRO-{stage}, 1 worker", 1,
                     ray_deepspeed(overrides, 1, args.steps, args.batch_size)))
    rows.append(("TorchTrainer + DeepSpeed ZeRO-2, 2 workers", 2,
                 ray_deepspeed(base + ["deepspeed.zero_stage=2"], 2, args.steps, args.batch_size)))
    ray.shutdown()
    plain = rows[0][2]
    print(f"\ntrain overhead: SimCLR {args.encoder}, batch {args.batch_size} per worker, {args.steps} timed steps")
    print(f"| {'setup':44s} | {'ms/step':>8s} | {'vs plain':>8s} | {'samples/s':>9s} |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|{'-' * 11}|")
    for name, workers, s in rows:
        print(f"| {name:44s} | {s * 1000:8.1f} | {s / plain:7.2f}x | {workers * args.batch_size / s:9.1f} |")


if __name__ == "__main__":
    main()

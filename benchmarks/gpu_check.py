"""GPU path check and throughput: NCCL, bf16 and DeepSpeed ZeRO 0/2/3 on CUDA, vs a plain PyTorch loop.

Runs the same `Method` modules and DeepSpeed config builder that the Ray Train workers use, in one process on
one GPU with an NCCL process group (world size 1), so it needs neither Ray nor a cluster. Prints a table and
writes JSON.

    python benchmarks/gpu_check.py [--encoder vit_small] [--image-size 224] [--patch 16] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.distributed as dist

from distributed_ssl.config import load_config
from distributed_ssl.engine.deepspeed_config import build_deepspeed_config
from distributed_ssl.engine.param_groups import param_groups
from distributed_ssl.losses.distributed_gather import _GatherWithGrad
from distributed_ssl.methods.registry import build_method
from distributed_ssl.modalities.masking import random_patch_mask


def make_batch(method: str, cfg, n: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    s = cfg.modality.image_size
    g = torch.Generator().manual_seed(0)
    batch = {"view_0": torch.randn(n, 3, s, s, generator=g)}
    if method == "simclr":
        batch["view_1"] = torch.randn(n, 3, s, s, generator=g)
    else:
        grid = (s // cfg.model.patch_size) ** 2
        batch["mask"] = random_patch_mask(n, grid, cfg.mask.ratio, g)
    return {k: (v.cuda().to(dtype) if v.is_floating_point() else v.cuda()) for k, v in batch.items()}


def check_nccl() -> dict:
    x = torch.arange(4.0, device="cuda", requires_grad=True)
    y = _GatherWithGrad.apply(x)  # the autograd all-gather SimCLR uses, on NCCL
    y.sum().backward()
    t = torch.ones(3, device="cuda")
    dist.all_reduce(t)
    return {"backend": dist.get_backend(), "all_gather_ok": bool(torch.equal(y, x.detach())),
            "gather_grad_ok": bool(torch.equal(x.grad, torch.ones(4, device="cuda"))),
            "all_reduce_ok": bool(torch.equal(t, torch.ones(3, device="cuda")))}


def time_steps(step, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def plain(cfg, method_name: str, n: int, steps: int, bf16: bool) -> tuple[float, float]:
    torch.manual_seed(0)
    method = build_method(cfg).cuda()
    opt = torch.optim.AdamW(param_groups(method, 0.05), lr=1e-4, fused=True)
    batch = make_batch(method_name, cfg, n, torch.float32)
    out = {}

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            out["loss"] = method(batch)["loss"]
        out["loss"].backward()
        opt.step()

    return time_steps(step, steps, 3), float(out["loss"])


def with_deepspeed(cfg, method_name: str, n: int, steps: int) -> tuple[float, float, str]:
    import deepspeed

    torch.manual_seed(0)
    method = build_method(cfg)
    opt = torch.optim.AdamW(param_groups(method, 0.05), lr=1e-4)
    engine, *_ = deepspeed.initialize(model=method, optimizer=opt, config=build_deepspeed_config(cfg, 1))
    dtype = torch.bfloat16 if cfg.deepspeed.precision == "bf16" else torch.float32
    batch = make_batch(method_name, cfg, n, dtype)
    out = {}

    def step():
        out["loss"] = engine(batch)["loss"]
        engine.backward(out["loss"])
        engine.step()

    s = time_steps(step, steps, 3)
    param_dtype = str(next(engine.module.parameters()).dtype)
    if hasattr(engine, "destroy"):
        engine.destroy()
    return s, float(out["loss"]), param_dtype


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="vit_small")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default="gpu_check.json")
    args = p.parse_args()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", rank=0, world_size=1)
    torch.backends.cuda.matmul.allow_tf32 = True
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "nccl": check_nccl(), "rows": []}
    for method_name in ("simclr", "mae"):
        base = [f"method.name={method_name}", f"model.encoder={args.encoder}", f"model.patch_size={args.patch}",
                f"modality.image_size={args.image_size}", f"train.batch_size={args.batch_size}",
                "scaling.use_gpu=true"]
        cfg = load_config(None, base)
        rows = []
        for bf16 in (False, True):
            s, loss = plain(cfg, method_name, args.batch_size, args.steps, bf16)
            rows.append((f"plain PyTorch {'bf16 autocast' if bf16 else 'fp32/tf32'}", s, loss, "float32"))
        for stage, precision in ((0, "fp32"), (2, "bf16"), (3, "bf16")):
            ds_cfg = load_config(None, base + [f"deepspeed.zero_stage={stage}", f"deepspeed.precision={precision}"])
            s, loss, dtype = with_deepspeed(ds_cfg, method_name, args.batch_size, args.steps)
            rows.append((f"DeepSpeed ZeRO-{stage} {precision}", s, loss, dtype))
        baseline = rows[0][1]
        for name, s, loss, dtype in rows:
            report["rows"].append({"method": method_name, "setup": name, "ms_per_step": s * 1000,
                                   "samples_per_s": args.batch_size / s, "vs_plain_fp32": s / baseline,
                                   "loss": loss, "param_dtype": dtype})
    print(f"\n{report['device']}, torch {report['torch']}, NCCL checks: {report['nccl']}")
    print(f"{args.encoder} patch {args.patch} at {args.image_size}px, batch {args.batch_size}, {args.steps} timed steps")
    print(f"| {'method':6s} | {'setup':28s} | {'ms/step':>8s} | {'samples/s':>9s} | {'vs plain fp32':>13s} | "
          f"{'loss':>7s} | params |")
    for r in report["rows"]:
        print(f"| {r['method']:6s} | {r['setup']:28s} | {r['ms_per_step']:8.1f} | {r['samples_per_s']:9.1f} | "
              f"{r['vs_plain_fp32']:12.2f}x | {r['loss']:7.3f} | {r['param_dtype']} |")
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

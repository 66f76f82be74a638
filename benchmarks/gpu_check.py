"""GPU path check and throughput: NCCL, bf16 and DeepSpeed ZeRO 0/2/3 on CUDA, vs a plain PyTorch loop; model
FLOP utilisation, torch.compile and MAE's visible-only speed-up on the same GPU.

Runs the same `Method` modules and DeepSpeed config builder that the Ray Train workers use, in one process on
one GPU with an NCCL process group (world size 1), so it needs neither Ray nor a cluster. Sections, each a table
with its baseline measured in the same run:
- MFU: model FLOPs per step (FlopCounterMode, forward + backward) / step time, against the bf16 and tf32 matmul
  peaks measured here (8192^3 torch.mm), for fp32/tf32 and bf16 autocast;
- torch.compile of the method (bf16 autocast) against eager, with its compile time;
- MAE with the encoder on the visible patches only against the full-sequence encode (benchmarks/mae_speedup.py);
- DeepSpeed ZeRO 0/2/3 against the plain loop.
The JSON (--out) is rewritten after each section, so a run stopped early keeps what it measured.

    python benchmarks/gpu_check.py [--encoder vit_small] [--image-size 224] [--patch 16] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.distributed as dist
from mae_speedup import FullEncodeMAE, build_mae
from train_overhead import count_flops

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


def plain_step(module: torch.nn.Module, batch: dict[str, torch.Tensor], bf16: bool, forward=None):
    """One fused-AdamW step of `module` (or of `forward`, e.g. its compiled form); returns the step callable."""
    opt = torch.optim.AdamW(param_groups(module, 0.05), lr=1e-4, fused=True)
    forward = module if forward is None else forward
    out = {}

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            out["loss"] = forward(batch)["loss"]
        out["loss"].backward()
        opt.step()
        return out["loss"]

    return step


def plain(cfg, method_name: str, n: int, steps: int, bf16: bool) -> tuple[float, float]:
    torch.manual_seed(0)
    method = build_method(cfg).cuda()
    step = plain_step(method, make_batch(method_name, cfg, n, torch.float32), bf16)
    return time_steps(step, steps, 3), float(step())


def matmul_peak(dtype: torch.dtype, n: int = 8192, repeats: int = 10) -> float:
    """Mean FLOP/s of n^3 torch.mm on random data after warm-up: the ceiling MFU is read against."""
    a, b = torch.randn(n, n, device="cuda", dtype=dtype), torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - t0)


def mfu_rows(base: list[str], method_name: str, n: int, steps: int, peaks: dict[str, float]) -> list[dict]:
    """FLOPs per step and MFU of the plain loop in fp32/tf32 (against the tf32 peak) and bf16 autocast (bf16 peak)."""
    cfg = load_config(None, base)
    torch.manual_seed(0)
    method = build_method(cfg).cuda()
    batch = make_batch(method_name, cfg, n, torch.float32)
    flops = count_flops(method, batch)
    rows = []
    for bf16, peak_name in ((False, "tf32"), (True, "bf16")):
        s = time_steps(plain_step(method, batch, bf16), steps, 3)
        rows.append({"method": method_name, "setup": "bf16 autocast" if bf16 else "fp32/tf32", "flops": flops,
                     "ms_per_step": s * 1e3, "tflops": flops / s / 1e12, "peak": peak_name,
                     "mfu": flops / s / peaks[peak_name]})
    return rows


def compile_rows(base: list[str], method_name: str, n: int, steps: int) -> list[dict]:
    """torch.compile(method) against eager, both under bf16 autocast; the first compiled step's wall time is kept."""
    cfg = load_config(None, base)
    rows = []
    for compiled in (False, True):
        torch.manual_seed(0)
        method = build_method(cfg).cuda()
        batch = make_batch(method_name, cfg, n, torch.float32)
        step = plain_step(method, batch, True, torch.compile(method) if compiled else None)
        row = {"method": method_name, "setup": "torch.compile" if compiled else "eager [baseline]"}
        t0 = time.perf_counter()
        try:
            step()
        except Exception as e:  # noqa: BLE001 (a compiler failure is the result of this row)
            rows.append(row | {"failed": f"{type(e).__name__}: {(str(e).splitlines() or [''])[-1][:100]}"})
            continue
        torch.cuda.synchronize()
        row["first_step_s"] = time.perf_counter() - t0
        rows.append(row | {"ms_per_step": time_steps(step, steps, 3) * 1e3})
    return rows


def mae_speedup_rows(models: list[str], px: int, patch: int, n: int, steps: int) -> list[dict]:
    """MAE (encoder on the 25 % visible patches) against the same encoder on the full sequence, bf16 autocast."""
    rows = []
    g = torch.Generator().manual_seed(0)
    grid = (px // patch) ** 2
    batch = {"view_0": torch.randn(n, 3, px, px, generator=g).cuda(),
             "mask": random_patch_mask(n, grid, 0.75, g).cuda()}
    for model in models:
        times = {}
        for arm in ("visible", "full"):
            mae = build_mae(model, px, patch, (512, 8, 16) if model == "vit_base" else (256, 4, 8))
            module = (mae if arm == "visible" else FullEncodeMAE(mae)).cuda()
            times[arm] = time_steps(plain_step(module, batch, True), steps, 3)
        rows.append({"model": model, "px": px, "tokens": grid, "visible_ms": times["visible"] * 1e3,
                     "full_ms": times["full"] * 1e3, "speedup": times["full"] / times["visible"]})
    return rows


def with_deepspeed(cfg, method_name: str, n: int, steps: int) -> tuple[float, float, str]:
    from distributed_ssl.engine.deepspeed_ops import initialize_engine

    torch.manual_seed(0)
    method = build_method(cfg)
    opt = torch.optim.AdamW(param_groups(method, 0.05), lr=1e-4)
    engine, _ = initialize_engine(method, opt, build_deepspeed_config(cfg, 1))
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
    p.add_argument("--mae-models", default="vit_small,vit_base", help="encoders of the MAE speed-up section")
    args = p.parse_args()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", rank=0, world_size=1)
    torch.backends.cuda.matmul.allow_tf32 = True
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "nccl": check_nccl()}
    head = f"{args.encoder} patch {args.patch} at {args.image_size}px, batch {args.batch_size}, {args.steps} timed steps"

    def save() -> None:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)

    print(f"\n{report['device']}, torch {report['torch']}, NCCL checks: {report['nccl']}", flush=True)
    bases = {m: [f"method.name={m}", f"model.encoder={args.encoder}", f"model.patch_size={args.patch}",
                 f"modality.image_size={args.image_size}", f"train.batch_size={args.batch_size}",
                 "scaling.use_gpu=true"] for m in ("simclr", "mae")}

    report["peaks"] = {"bf16": matmul_peak(torch.bfloat16), "tf32": matmul_peak(torch.float32)}
    report["mfu"] = [r for m in bases for r in mfu_rows(bases[m], m, args.batch_size, args.steps, report["peaks"])]
    save()
    print(f"\nModel FLOP utilisation, {head}; matmul peaks measured here: bf16 "
          f"{report['peaks']['bf16'] / 1e12:.0f} TFLOP/s, tf32 {report['peaks']['tf32'] / 1e12:.0f} TFLOP/s")
    print("| method | setup         | GFLOP/step | ms/step | TFLOP/s | MFU (vs peak) |")
    for r in report["mfu"]:
        print(f"| {r['method']:6s} | {r['setup']:13s} | {r['flops'] / 1e9:10.1f} | {r['ms_per_step']:7.1f} | "
              f"{r['tflops']:7.1f} | {r['mfu']:6.1%} ({r['peak']}) |", flush=True)

    report["mae_speedup"] = mae_speedup_rows(args.mae_models.split(","), args.image_size, args.patch,
                                             args.batch_size, args.steps)
    save()
    print(f"\nMAE visible-only encoder vs full-sequence encode, mask ratio 0.75, {args.image_size}px patch "
          f"{args.patch}, batch {args.batch_size}, bf16 autocast")
    print("| model     | tokens | visible-only ms | full encode ms [baseline] | speed-up |")
    for r in report["mae_speedup"]:
        print(f"| {r['model']:9s} | {r['tokens']:6d} | {r['visible_ms']:15.1f} | {r['full_ms']:25.1f} | "
              f"{r['speedup']:7.2f}x |", flush=True)

    report["rows"] = []
    for method_name, base in bases.items():
        rows = []
        for bf16 in (False, True):
            sec, loss = plain(load_config(None, base), method_name, args.batch_size, args.steps, bf16)
            rows.append((f"plain PyTorch {'bf16 autocast' if bf16 else 'fp32/tf32'}", sec, loss, "float32"))
        for stage, precision in ((0, "fp32"), (2, "bf16"), (3, "bf16")):
            ds_cfg = load_config(None, base + [f"deepspeed.zero_stage={stage}", f"deepspeed.precision={precision}"])
            sec, loss, dtype = with_deepspeed(ds_cfg, method_name, args.batch_size, args.steps)
            rows.append((f"DeepSpeed ZeRO-{stage} {precision}", sec, loss, dtype))
        baseline = rows[0][1]
        for name, sec, loss, dtype in rows:
            report["rows"].append({"method": method_name, "setup": name, "ms_per_step": sec * 1000,
                                   "samples_per_s": args.batch_size / sec, "vs_plain_fp32": sec / baseline,
                                   "loss": loss, "param_dtype": dtype})
        save()
    print(f"\n{head}")
    print(f"| {'method':6s} | {'setup':28s} | {'ms/step':>8s} | {'samples/s':>9s} | {'vs plain fp32':>13s} | "
          f"{'loss':>7s} | params |")
    for r in report["rows"]:
        print(f"| {r['method']:6s} | {r['setup']:28s} | {r['ms_per_step']:8.1f} | {r['samples_per_s']:9.1f} | "
              f"{r['vs_plain_fp32']:12.2f}x | {r['loss']:7.3f} | {r['param_dtype']} |", flush=True)

    report["compile"] = [r for m in bases for r in compile_rows(bases[m], m, args.batch_size, args.steps)]
    save()
    print(f"\ntorch.compile (inductor) vs eager, bf16 autocast, {head}")
    print("| method | setup            | first step s | ms/step |")
    for r in report["compile"]:
        cells = (f"{r['first_step_s']:12.1f} | {r['ms_per_step']:7.1f}" if "failed" not in r
                 else f"failed: {r['failed']}")
        print(f"| {r['method']:6s} | {r['setup']:16s} | {cells} |")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""Training-step overhead: TorchTrainer + DeepSpeed vs a plain single-process PyTorch loop.

Same model (SimCLR, tiny ViT), same synthetic batch, same AdamW; the data pipeline is left out so the
numbers isolate what Ray Train and DeepSpeed add per step. Prints a table with the ratio to the plain loop.

`--mfu` runs only the model-FLOP-utilisation part, without Ray: FLOPs per step counted with FlopCounterMode
(forward + backward of the method's loss on one batch), achieved FLOP/s (FLOPs / measured step time) and its
ratio to a matmul peak measured in the same run (best of a few fp32 torch.mm on this CPU, same thread count);
then bf16 autocast and torch.compile of the forward, each against fp32 eager. Output also goes to --mfu-out.

    python benchmarks/train_overhead.py [--steps 30] [--batch-size 64] [--encoder vit_tiny]
    nice -n 19 python benchmarks/train_overhead.py --mfu [--mfu-sizes 64:4:2,224:16:2] [--mfu-variants 64]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from distributed_ssl.config import load_config
from distributed_ssl.engine.deepspeed_config import build_deepspeed_config
from distributed_ssl.engine.deepspeed_ops import initialize_engine
from distributed_ssl.engine.param_groups import param_groups
from distributed_ssl.methods.registry import build_method
from distributed_ssl.modalities.masking import random_patch_mask

MFU_OUT = Path(__file__).resolve().parent / "results" / "train_overhead_mfu_cpu.txt"


def _batch(batch_size: int, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"view_0": torch.randn(batch_size, 3, size, size, generator=g),
            "view_1": torch.randn(batch_size, 3, size, size, generator=g)}


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
    import ray.train

    cfg = load_config(None, config["overrides"])
    torch.manual_seed(0)
    method = build_method(cfg)
    world = ray.train.get_context().get_world_size()
    opt = torch.optim.AdamW(param_groups(method, 0.05), lr=1e-3)
    engine, _ = initialize_engine(method, opt, build_deepspeed_config(cfg, world))
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


# ---- model FLOP utilisation (--mfu): no Ray, one process ----

CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}


Shape = tuple[int, ...]


def _cpu_sdpa(query_shape: Shape, key_shape: Shape, value_shape: Shape, *args: object, out_shape: object = None,
              **kwargs: object) -> int:
    """The two attention matmuls of SDPA's CPU kernel, as FlopCounterMode counts them for the CUDA kernels."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward(grad_out_shape: Shape, query_shape: Shape, key_shape: Shape, value_shape: Shape,
                       *args: object, out_shape: object = None, **kwargs: object) -> int:
    """The backward's four attention matmuls, likewise."""
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


# FlopCounterMode knows the CUDA attention kernels only; on CPU SDPA runs this one, which it would count as 0.
_CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
                  torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward}


def matmul_peak(clock: str, n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 torch.mm FLOP/s of n x n matrices: what this CPU's BLAS reaches with this thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    now, best = CLOCKS[clock], 0.0
    torch.mm(a, b)
    for _ in range(repeats):
        t0 = now()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (now() - t0))
    return best


def count_flops(method: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    """Model FLOPs of one step: forward + backward of the method's loss (the optimizer step is not model work)."""
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION) as counter:
        method(batch)["loss"].backward()
    method.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def step_seconds(method: torch.nn.Module, forward: Callable, batch: dict[str, torch.Tensor], warmup: int,
                 steps: int, clock: str, bf16: bool = False) -> float:
    """Median time of one plain-loop step (zero_grad, forward [+ autocast], backward, clip, AdamW)."""
    opt = torch.optim.AdamW(param_groups(method, 0.05), lr=1e-3)
    now, times = CLOCKS[clock], []
    for i in range(warmup + steps):
        t0 = now()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = forward(batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(method.parameters(), 1.0)
        opt.step()
        if i >= warmup:
            times.append(now() - t0)
    return statistics.median(times)


def _timeout(_signum: int, _frame: object) -> None:
    raise TimeoutError


def compiled_seconds(method: torch.nn.Module, batch: dict[str, torch.Tensor],
                     args: argparse.Namespace) -> tuple[str | float, float]:
    """(step time, compile wall seconds) with torch.compile(method) forward (inductor; backward via AOTAutograd),
    or why there is no step time: a failure, or a compile that runs past --compile-timeout wall seconds."""
    import torch._inductor.config as inductor_config

    inductor_config.compile_threads = 1  # no worker pool to start on a 2-core machine
    compiled = torch.compile(method)
    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(args.compile_timeout)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        compiled(batch)["loss"].backward()  # the first forward and backward compile
        method.zero_grad(set_to_none=True)
    except Exception as e:  # noqa: BLE001 (any compiler failure is the result; inductor wraps our TimeoutError)
        spent = f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU"
        if time.perf_counter() - t0 >= args.compile_timeout - 1:
            return f"compile > {args.compile_timeout} s wall, not measured ({spent})", time.perf_counter() - t0
        return f"compile failed after {spent}: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:80]}", \
            time.perf_counter() - t0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    compile_wall = time.perf_counter() - t0
    return step_seconds(method, compiled, batch, args.variant_warmup, args.variant_steps, args.clock), compile_wall


def _mfu_setup(size: str, args: argparse.Namespace) -> tuple[dict, torch.nn.Module, dict[str, torch.Tensor]]:
    """`px:patch:batch` → row metadata, the config's method (model.encoder=--mfu-encoder) and a synthetic batch."""
    px, patch, bs = (int(v) for v in size.split(":"))
    cfg = load_config(None, [f"model.encoder={args.mfu_encoder}", f"method.name={args.mfu_method}",
                             f"modality.image_size={px}", f"model.patch_size={patch}", f"train.batch_size={bs}"])
    torch.manual_seed(0)
    method = build_method(cfg)
    batch = _batch(bs, px)
    tokens = (px // patch) ** 2
    if args.mfu_method == "mae":
        batch["mask"] = random_patch_mask(bs, tokens, cfg.mask.ratio, torch.Generator().manual_seed(0))
    return {"px": px, "patch": patch, "batch": bs, "tokens": tokens}, method, batch


def mfu_row(size: str, peak: float, args: argparse.Namespace, variants: set[str]) -> dict:
    """FLOPs, fp32 eager step time and MFU for one image size; bf16 autocast and compile ratios if `variants`."""
    row, method, batch = _mfu_setup(size, args)
    row["flops"] = count_flops(method, batch)
    w0 = time.perf_counter()
    row["fp32_s"] = step_seconds(method, method, batch, args.mfu_warmup, args.mfu_steps, args.clock)
    row["mfu"] = row["flops"] / row["fp32_s"] / peak
    print(f"  {row['px']}px fp32 eager: {row['fp32_s'] * 1e3:.0f} ms/step, "
          f"{time.perf_counter() - w0:.0f} s wall", flush=True)
    if "bf16" in variants:
        w0 = time.perf_counter()
        row["bf16_s"] = step_seconds(method, method, batch, args.variant_warmup, args.variant_steps, args.clock,
                                     bf16=True)
        print(f"  {row['px']}px bf16 autocast: {row['bf16_s'] * 1e3:.0f} ms/step, "
              f"{time.perf_counter() - w0:.0f} s wall", flush=True)
    if "compile" in variants:
        row["compile"], row["compile_wall"] = compiled_seconds(method, batch, args)
        print(f"  {row['px']}px torch.compile: {row['compile']} ({row['compile_wall']:.0f} s wall to compile)",
              flush=True)
    return row


def _variant_cell(row: dict, key: str) -> str:
    value = row.get(key)
    if value is None:
        return "not run"
    if isinstance(value, str):
        return value
    return f"{value * 1e3:.0f} ms = {row['fp32_s'] / value:.2f}x fp32"


def format_mfu(rows: list[dict], peak: float, args: argparse.Namespace) -> str:
    """The --mfu table: one line per image size; speed-ups > 1 mean faster than fp32 eager."""
    lines = [f"model FLOP utilisation: {args.mfu_method} {args.mfu_encoder}, fp32 eager plain loop (zero_grad + "
             f"forward + backward + clip + AdamW), torch {torch.__version__}, "
             f"torch.set_num_threads({torch.get_num_threads()}), clock: {args.clock}"
             + (" (this thread's CPU time)" if args.clock == "cpu" else ""),
             f"fp32: {args.mfu_warmup} warm-up + median of {args.mfu_steps} steps; bf16 / compile: "
             f"{args.variant_warmup} warm-up + median of {args.variant_steps}",
             f"matmul peak (best of 5 fp32 torch.mm 2048x2048, same threads and clock): {peak / 1e9:.1f} GFLOP/s",
             "FLOPs: FlopCounterMode, forward + backward of the loss on one batch (CPU attention kernel counted too)",
             "| px  | patch | tokens | batch | GFLOP/step | fp32 ms/step | GFLOP/s | MFU   | bf16 autocast        "
             "| torch.compile |",
             "|-----|-------|--------|-------|------------|--------------|---------|-------|----------------------"
             "|---------------|"]
    for r in rows:
        lines.append(f"| {r['px']:3d} | {r['patch']:5d} | {r['tokens']:6d} | {r['batch']:5d} | "
                     f"{r['flops'] / 1e9:10.1f} | {r['fp32_s'] * 1e3:12.0f} | {r['flops'] / r['fp32_s'] / 1e9:7.1f} | "
                     f"{r['mfu']:5.3f} | {_variant_cell(r, 'bf16_s'):20s} | {_variant_cell(r, 'compile')} |")
    lines += [f"{r['px']} px torch.compile: first forward + backward (the compile) took {r['compile_wall']:.0f} s wall"
              for r in rows if "compile_wall" in r]
    return "\n".join(lines)


def run_mfu(args: argparse.Namespace) -> None:
    """The --mfu part on its own: no Ray, no DeepSpeed, one process."""
    if args.clock == "cpu" and args.threads != 1:
        raise SystemExit("--clock cpu reads one thread's CPU time: use --threads 1 (or --clock wall)")
    torch.set_num_threads(args.threads)
    print(f"torch.set_num_threads({torch.get_num_threads()}), clock {args.clock}", flush=True)
    peak = matmul_peak(args.clock)
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s", flush=True)
    variant_px = {int(v) for v in args.mfu_variants.split(",") if v}
    kinds = {k for k in args.mfu_kinds.split(",") if k}
    if kinds - {"bf16", "compile"}:
        raise SystemExit(f"--mfu-kinds takes bf16 and/or compile, got {args.mfu_kinds!r}")
    rows = [mfu_row(size, peak, args, kinds if int(size.split(":")[0]) in variant_px else set())
            for size in args.mfu_sizes.split(",")]
    table = format_mfu(rows, peak, args)
    print("\n" + table)
    args.mfu_out.parent.mkdir(parents=True, exist_ok=True)
    with args.mfu_out.open("a" if args.append else "w") as f:
        f.write(table + "\n\n")
    print(f"\nwritten to {args.mfu_out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="timed steps per setup (after 3 warm-up steps)")
    p.add_argument("--batch-size", type=int, default=64, help="batch per worker")
    p.add_argument("--encoder", default="vit_tiny", help="model.encoder of the SimCLR model")
    m = p.add_argument_group("model FLOP utilisation (--mfu: only this part, no Ray)")
    m.add_argument("--mfu", action="store_true", help="run only the MFU / bf16 / compile measurements")
    m.add_argument("--mfu-encoder", default="vit_small", help="model.encoder (a registry flavour)")
    m.add_argument("--mfu-method", default="simclr", help="method.name whose loss is counted and timed")
    m.add_argument("--mfu-sizes", default="64:4:2,224:16:2",
                   help="comma-separated px:patch:batch (SimCLR encodes 2 views, so 2 x batch images)")
    m.add_argument("--mfu-variants", default="64", help="comma-separated px of the sizes that also get bf16 "
                   "autocast and torch.compile rows ('' for none)")
    m.add_argument("--mfu-kinds", default="bf16,compile", help="which of bf16, compile those sizes get")
    m.add_argument("--mfu-warmup", type=int, default=1, help="untimed fp32 steps first")
    m.add_argument("--mfu-steps", type=int, default=2, help="timed fp32 steps (median)")
    m.add_argument("--variant-warmup", type=int, default=1, help="untimed bf16 / compiled steps after compiling")
    m.add_argument("--variant-steps", type=int, default=1, help="timed bf16 / compiled steps (median)")
    m.add_argument("--compile-timeout", type=int, default=180, help="wall seconds the compile may take")
    m.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (mm peak uses the same)")
    m.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                   help="cpu: this thread's CPU time (needs --threads 1; robust on a shared oversubscribed "
                        "machine); wall: perf_counter")
    m.add_argument("--mfu-out", type=Path, default=MFU_OUT, help="where the MFU table is written")
    m.add_argument("--append", action="store_true", help="append to --mfu-out (split a long run in parts)")
    args = p.parse_args()
    if args.mfu:
        run_mfu(args)
        return
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

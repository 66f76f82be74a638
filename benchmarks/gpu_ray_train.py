"""Ray Train on a GPU: is the accelerator fed? The image recipe's own pipeline against the same step on a batch
that already sits on the GPU.

One Ray Train worker (`use_gpu=True`) runs the recipe's `Method` under DeepSpeed (the project's config builder),
fed by `build_train_dataset` (Ray Data on this machine's CPUs: decode, crops, flips, jitter) through
`iter_torch_batches`, and measures, per step, the wait for the next batch against the step itself (synchronised
with the GPU, so the step's time is its kernels' and not their launch). The baseline is the same worker and step on
one synthetic batch made on the GPU once: the step rate with no input at all. The data set is the built-in digits
(scikit-learn's copy), upsampled to `--image-size`.

    python benchmarks/gpu_ray_train.py [--image-size 64] [--batch-size 256] [--steps 60] [--out gpu_ray_train.json]

It needs no MLflow: the worker is written here, not the project's trainer, so that it runs where only Ray,
DeepSpeed and torch are installed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import ray
import ray.train
import torch
from ray.train.torch import TorchTrainer

from distributed_ssl.config import SSLConfig, load_config
from distributed_ssl.data.sample_image import write_digits
from distributed_ssl.engine.deepspeed_config import build_deepspeed_config
from distributed_ssl.engine.input_wait import InputWaitMeter
from distributed_ssl.engine.param_groups import param_groups
from distributed_ssl.engine.precision import precision_for
from distributed_ssl.methods.registry import build_method, view_spec_for
from distributed_ssl.modalities.train_dataset import build_train_dataset

RECIPE = Path(__file__).resolve().parents[1] / "jobs" / "configs" / "image_simclr.yaml"


def _worker(config: dict) -> None:
    from distributed_ssl.engine.deepspeed_ops import initialize_engine

    cfg = load_config(str(RECIPE), config["overrides"])
    torch.manual_seed(0)
    device = ray.train.torch.get_device()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    precision = precision_for(cfg.deepspeed.precision)
    method = build_method(cfg)
    opt = torch.optim.AdamW(param_groups(method, cfg.optim.weight_decay), lr=cfg.optim.lr)
    engine, _ = initialize_engine(method, opt, build_deepspeed_config(cfg, 1))

    def on_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: (v.to(device, precision.dtype, non_blocking=True) if v.is_floating_point() else v.to(device))
                for k, v in batch.items()}

    if config["fed"]:
        shard = ray.train.get_dataset_shard("train")
        source = (on_device(b) for b in shard.iter_torch_batches(
            batch_size=cfg.train.batch_size, drop_last=True,
            local_shuffle_buffer_size=cfg.data.local_shuffle_buffer))
    else:
        source = itertools.repeat(on_device(_synthetic(cfg)))
    meter, warmup, steps = InputWaitMeter(), 5, config["steps"]
    for i in range(warmup + steps):
        if i == warmup:
            meter, t0 = InputWaitMeter(), time.perf_counter()
        meter.waiting()
        batch = next(source)
        sync()
        meter.arrived()
        with precision.forward_context(device):
            loss = engine(batch)["loss"]
        engine.backward(loss)
        engine.step()
        sync()
        meter.computed()
    wall = time.perf_counter() - t0
    Path(config["out"]).write_text(json.dumps({
        "samples_per_s": steps * cfg.train.batch_size / wall, "ms_per_step": wall / steps * 1e3,
        "input_wait_fraction": meter.run_fraction(), "loss": float(loss),
        "param_dtype": str(next(engine.module.parameters()).dtype), "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"}))


def _synthetic(cfg: SSLConfig) -> dict[str, torch.Tensor]:
    s, n = cfg.modality.image_size, cfg.train.batch_size
    g = torch.Generator().manual_seed(0)
    return {"view_0": torch.randn(n, 3, s, s, generator=g), "view_1": torch.randn(n, 3, s, s, generator=g)}


def run(overrides: list[str], fed: bool, steps: int, tmp: str, use_gpu: bool) -> dict:
    """One TorchTrainer fit of `_worker`; fed: through the recipe's Ray Data pipeline, else one batch on the GPU."""
    cfg = load_config(str(RECIPE), overrides)
    out = str(Path(tmp) / f"timing_{int(fed)}.json")
    # one pass of the iterator holds every timed step: no pipeline restart inside the measurement
    passes = -(-(steps + 5) * cfg.train.batch_size // 1400) + 1
    datasets = {"train": build_train_dataset(cfg, view_spec_for(cfg), epochs_per_pass=passes)} if fed else {}
    TorchTrainer(_worker, train_loop_config={"overrides": overrides, "steps": steps, "fed": fed, "out": out},
                 scaling_config=ray.train.ScalingConfig(num_workers=1, use_gpu=use_gpu,
                                                        resources_per_worker={"CPU": 1}),
                 run_config=ray.train.RunConfig(storage_path=tmp, name=f"gpu_{int(fed)}"),
                 datasets=datasets).fit()
    return json.loads(Path(out).read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--zero-stage", type=int, default=2)
    p.add_argument("--precision", default="bf16-mixed")
    p.add_argument("--preprocess-tasks", default="",
                   help="comma-separated data.preprocess_tasks caps, one fed row each (default: the project's own)")
    p.add_argument("--out", default="gpu_ray_train.json")
    p.add_argument("--cpu", action="store_true", help="a dry run of the same code without a GPU")
    args = p.parse_args()
    cpus = os.cpu_count() or 2
    ray.init(num_cpus=cpus + (2 if args.cpu else 0), num_gpus=0 if args.cpu else 1,
             object_store_memory=(2 if args.cpu else 8) * 2**30, include_dashboard=False)
    report: dict = {"cpus": cpus, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        write_digits(f"{tmp}/digits")
        overrides = [f"data.train={tmp}/digits/train", "data.eval=null", f"scaling.use_gpu={not args.cpu}",
                     f"modality.image_size={args.image_size}", f"train.batch_size={args.batch_size}",
                     f"deepspeed.zero_stage={args.zero_stage}", f"deepspeed.precision={args.precision}"]
        arms = [(False, None), (True, None)] + [(True, int(n)) for n in args.preprocess_tasks.split(",") if n]
        for fed, tasks in arms:
            cap = [f"data.preprocess_tasks={tasks}"] if tasks else []
            row = run(overrides + cap, fed, args.steps, tmp, not args.cpu)
            row["setup"] = ("batch already on the GPU [baseline]" if not fed else
                            f"Ray Data -> GPU, {tasks} preprocessing tasks" if tasks else "Ray Data pipeline -> GPU")
            report["rows"].append(row)
            print(row, flush=True)
    base = report["rows"][0]["samples_per_s"]
    print(f"\nRay Train on {report['rows'][0]['device']}, {cpus} CPUs for Ray Data, image recipe "
          f"({RECIPE.name}) at {args.image_size}px, batch {args.batch_size}, ZeRO-{args.zero_stage} "
          f"{args.precision}, {args.steps} timed steps")
    print(f"| {'setup':36s} | {'ms/step':>8s} | {'samples/s':>9s} | {'vs baseline':>11s} | input wait |")
    for r in report["rows"]:
        print(f"| {r['setup']:36s} | {r['ms_per_step']:8.1f} | {r['samples_per_s']:9.0f} | "
              f"{r['samples_per_s'] / base:10.2f}x | {r['input_wait_fraction']:9.1%} |")
    Path(args.out).write_text(json.dumps(report, indent=2))
    ray.shutdown()


if __name__ == "__main__":
    main()

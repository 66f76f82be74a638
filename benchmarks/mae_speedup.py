"""MAE speed-up: the encoder sees only the visible patches vs the full token sequence with mask tokens.

One training step (forward + backward + AdamW step) of the project's MAE (`distributed_ssl.methods.mae.MAE`: the
encoder drops the hidden patches, a light decoder fills them with mask tokens) against a SimMIM/BEiT-style
baseline written here: the same encoder blocks and decoder, but a learned mask token replaces each hidden patch
embedding and the FULL sequence goes through the encoder; the decoder then reads the encoder's output at every
position. Both use the same loss (per-patch normalised pixel MSE on the hidden patches). Synthetic images, the
project's exact-ratio random masks. Prints a table (the baseline measured in the same run) and writes it to
benchmarks/results/mae_speedup_cpu.txt.

    nice -n 19 python benchmarks/mae_speedup.py [--models vit_tiny,vit_small] [--sizes 32,64] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from distributed_ssl.methods.mae import MAE
from distributed_ssl.modalities.masking import random_patch_mask
from distributed_ssl.models.registry import VIT_FLAVOURS, build_encoder
from distributed_ssl.models.transformer import encode_tokens

RESULTS = Path(__file__).resolve().parent / "results" / "mae_speedup_cpu.txt"
GOAL = 3.0


class FullEncodeMAE(nn.Module):
    """SimMIM/BEiT-style baseline around an MAE's own encoder and decoder: nothing is dropped, so the encoder
    pays for every patch; this is what `MAE` saves by encoding visible patches only."""

    def __init__(self, mae: MAE):
        super().__init__()
        self.mae = mae
        self.enc_mask_token = nn.Parameter(torch.zeros(1, 1, mae.encoder.dim))
        nn.init.normal_(self.enc_mask_token, std=0.02)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, 1 + N, D]: hidden patch embeddings swapped for the mask token (then positions added), all encoded."""
        enc = self.mae.encoder
        tokens = enc.patch_embed(x).flatten(2).transpose(1, 2)
        w = mask.unsqueeze(-1).to(tokens.dtype)
        tokens = tokens * (1 - w) + self.enc_mask_token.to(tokens.dtype) * w + enc.pos_embed.to(tokens.dtype)
        return encode_tokens(tokens, None, enc.cls_token, enc.blocks, enc.norm)

    def decode(self, latent: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The MAE decoder's layers on the full encoded sequence (no scatter: every position has a token)."""
        dec = self.mae.decoder
        h = dec.embed(latent)
        h = torch.cat([h[:, :1], h[:, 1:] + dec.pos_embed(x).to(h.dtype)], dim=1)
        for block in dec.blocks:
            h = block(h)
        return dec.out(dec.norm(h))[:, 1:]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, mask = batch["view_0"], batch["mask"].bool()
        pred = self.decode(self.encode(x, mask), x)
        return {"loss": self.mae.criterion(pred, self.mae.encoder.patchify(x), mask)}


def build_mae(model: str, px: int, patch: int, decoder: tuple[int, int, int]) -> MAE:
    """The project's MAE with a registry encoder; seeded so both arms start from the same weights."""
    torch.manual_seed(0)
    enc = build_encoder(model, input_size=(px, px), in_channels=3, patch_size=patch)
    return MAE(enc, *decoder, norm_pix_loss=True)


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}


def time_steps(module: nn.Module, batch: dict[str, torch.Tensor], warmup: int, steps: int,
               clock: str = "cpu") -> float:
    """Median seconds of one full optimizer step (zero_grad, forward, backward, AdamW) after a warm-up.

    `cpu` reads this thread's CPU time: with one intra-op thread every kernel (and CPU autograd) runs on it, so
    the figure is the step's compute and not how long a shared, oversubscribed machine made it wait."""
    now = CLOCKS[clock]
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4, weight_decay=0.05)
    times = []
    for i in range(warmup + steps):
        t0 = now()
        opt.zero_grad(set_to_none=True)
        module(batch)["loss"].backward()
        opt.step()
        if i >= warmup:
            times.append(now() - t0)
    return statistics.median(times)


def make_batch(batch_size: int, px: int, patch: int, ratio: float) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = (px // patch) ** 2
    return {"view_0": torch.randn(batch_size, 3, px, px, generator=g),
            "mask": random_patch_mask(batch_size, n, ratio, g)}


def measure_row(model: str, px: int, args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    """Both arms for one (model, image size); the baseline is built from the same seed and weights."""
    decoder = (args.decoder_dim, args.decoder_depth, args.decoder_heads)
    batch = make_batch(args.batch_size, px, args.patch_size, args.mask_ratio)
    n = (px // args.patch_size) ** 2
    visible = int((~batch["mask"][0]).sum())
    mae = build_mae(model, px, args.patch_size, decoder)
    full = FullEncodeMAE(build_mae(model, px, args.patch_size, decoder))
    with torch.no_grad():  # same weights, same batch: the losses differ only by what the encoder saw
        loss_vis, loss_full = float(mae(batch)["loss"]), float(full(batch)["loss"])
    w0 = time.perf_counter()
    t_vis = time_steps(mae, batch, args.warmup, args.steps, args.clock)
    t_full = time_steps(full, batch, args.warmup, args.steps, args.clock)
    row = {"model": model, "px": px, "tokens": n, "visible": visible, "vis_ms": t_vis * 1e3,
           "full_ms": t_full * 1e3, "speedup": t_full / t_vis, "loss_vis": loss_vis, "loss_full": loss_full}
    log(f"  {model} {px}px: visible-only {row['vis_ms']:.1f} ms, full {row['full_ms']:.1f} ms "
        f"(initial losses {loss_vis:.3f} / {loss_full:.3f}; {time.perf_counter() - w0:.0f} s wall for both arms)")
    return row


def format_table(rows: list[dict], args: argparse.Namespace, larger: str) -> str:
    lines = [f"MAE visible-only encoder vs full-sequence encode (SimMIM/BEiT-style baseline), mask ratio "
             f"{args.mask_ratio}, patch {args.patch_size}, batch {args.batch_size}, decoder "
             f"{args.decoder_dim}d x{args.decoder_depth}, fp32 eager, torch {torch.__version__}, "
             f"torch.set_num_threads({torch.get_num_threads()}), {args.warmup} warm-up + median of {args.steps} "
             f"steps (zero_grad + forward + backward + AdamW), clock: {args.clock}"
             + (" (this thread's CPU time)" if args.clock == "cpu" else ""),
             f"goal: >= {GOAL:.0f}x for the larger model ({larger}); other rows are reported against it too",
             "| model     | px | tokens (visible) | visible-only ms/step | full-encode ms/step | speed-up | >= 3x     |",
             "|-----------|----|------------------|----------------------|---------------------|----------|-----------|"]
    for r in rows:
        met = "yes" if r["speedup"] >= GOAL else "NO"
        if r["model"] != larger:
            met += " (n/a)"
        lines.append(f"| {r['model']:9s} | {r['px']:2d} | {r['tokens']:6d} ({r['visible']:4d})    | "
                     f"{r['vis_ms']:20.1f} | {r['full_ms']:19.1f} | {r['speedup']:7.2f}x | {met:9s} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="vit_tiny,vit_small",
                   help=f"comma-separated registry flavours ({', '.join(VIT_FLAVOURS)}); the last is the goal's")
    p.add_argument("--sizes", default="32,64", help="comma-separated square image sizes in px")
    p.add_argument("--patch-size", type=int, default=4, help="kept for every size (model.patch_size default: 4)")
    p.add_argument("--batch-size", type=int, default=8, help="images per step (sized for a 2-core CPU)")
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--decoder-dim", type=int, default=64, help="method.decoder_dim default")
    p.add_argument("--decoder-depth", type=int, default=1, help="method.decoder_depth default")
    p.add_argument("--decoder-heads", type=int, default=2, help="method.decoder_heads default")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--steps", type=int, default=3, help="timed steps; the median is reported")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads for the whole run (1: the cpu clock then sees all the work)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                   help="cpu: thread CPU time, robust on a shared oversubscribed machine (needs --threads 1); "
                        "wall: perf_counter")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the table is written")
    args = p.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        p.error("--clock cpu reads one thread's CPU time: use --threads 1 (or --clock wall)")
    torch.set_num_threads(args.threads)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in VIT_FLAVOURS]
    if unknown:
        p.error(f"unknown flavour(s) {unknown}; known: {', '.join(VIT_FLAVOURS)}")
    print(f"torch.set_num_threads({torch.get_num_threads()}); batch {args.batch_size}", flush=True)
    rows = [measure_row(m, int(px), args, lambda s: print(s, flush=True))
            for m in models for px in args.sizes.split(",")]
    table = format_table(rows, args, larger=models[-1])
    print("\n" + table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()

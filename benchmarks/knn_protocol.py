"""kNN of finished runs under both probe protocols: plain cosine (the DINO protocol) and cosine after standardising
every feature with the memory bank's statistics (`eval.knn_standardize`, the default), for the trained encoder and
the same encoder at random init, so the choice of protocol is seen to favour neither side:

    python benchmarks/knn_protocol.py RUN_DIR DATA [RUN_DIR DATA ...] [--out benchmarks/results/knn_protocol_cpu.md]

DATA is the run's labeled eval set (train/ and val/ shard folders).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from distributed_ssl.evaluation.evaluate_run import load_encoder
from distributed_ssl.evaluation.features import embed_all
from distributed_ssl.evaluation.knn_probe import knn_from_features
from distributed_ssl.evaluation.labeled_set import load_labeled
from distributed_ssl.methods.registry import build_encoder_for

HEAD = ["run", "plain: trained", "plain: random init", "plain: gain", "standardised: trained",
        "standardised: random init", "standardised: gain"]


def protocols(run_dir: str, data: str) -> list[float]:
    """[plain trained, plain random, standardised trained, standardised random] kNN top-1 on `data`."""
    cfg, trained = load_encoder(run_dir)
    splits = load_labeled(data, cfg)
    torch.manual_seed(cfg.train.seed)  # the random-init encoder the run itself measured
    random_init = build_encoder_for(cfg).eval()
    values = []
    for standardise in (False, True):
        for encoder in (trained, random_init):
            with torch.no_grad():
                feats = {name: embed_all(encoder.embed, s.inputs, cfg.eval.batch_size, "cpu", torch.float32)
                         for name, s in splits.items()}
            values.append(knn_from_features(feats, splits, cfg.eval, standardize_features=standardise))
    return values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pairs", nargs="+", metavar="RUN_DIR DATA")
    p.add_argument("--out", default=None, help="also write the table to this file")
    args = p.parse_args()
    if len(args.pairs) % 2:
        raise SystemExit("expected RUN_DIR DATA pairs")
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    for run_dir, data in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        pt, pr, st, sr = protocols(run_dir, data)
        lines.append(f"| {Path(run_dir).name} | {pt:.3f} | {pr:.3f} | {pt - pr:+.3f} | {st:.3f} | {sr:.3f} | "
                     f"{st - sr:+.3f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()

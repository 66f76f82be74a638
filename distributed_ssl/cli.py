"""`dssl`: the command line. Thin: parse, load the config, call the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EPILOG = """examples:
  dssl data sample image data/digits
  dssl data convert image ~/photos data/photos
  dssl data inspect data/photos
  dssl data embed runs/a data/photos/train runs/a/embeddings
  dssl data prune data/photos/train runs/a/pruned --embeddings runs/a/embeddings --keep 0.7 --strategy prototype
  dssl config show jobs/configs/image_simclr.yaml train.epochs=5
  dssl train jobs/configs/image_simclr.yaml data.train=data/photos/train run.dir=runs/a
  dssl train --resume runs/a
  dssl eval runs/a --data data/digits
  dssl export runs/a --format onnx --out runs/a/encoder.onnx
"""

CONFIG_ARGS_HELP = ("a YAML config (e.g. jobs/configs/image_simclr.yaml), then dotted key=value overrides; "
                    "options may stand before, between or after them")


def _split_config_args(args: list[str]) -> tuple[str | None, list[str]]:
    """`[CONFIG] key=value ...` → (config path or None, overrides)."""
    if args and "=" not in args[0]:
        return args[0], args[1:]
    bad = [a for a in args if "=" not in a]
    if bad:
        raise SystemExit(f"error: expected key=value overrides after the config, got {bad[0]!r}")
    return None, args


def cmd_data_sample(ns: argparse.Namespace) -> int:
    from distributed_ssl.data.shard_sources import SampleOptions, options_from, shard_sources

    source = shard_sources()[ns.modality]
    if ns.set and ns.set not in source.sets:
        known = ", ".join(source.sets) or "none besides the default"
        raise SystemExit(f"error: --set {ns.set}: {ns.modality} has no such sample set (known: {known})")
    manifests = source.write_sample(ns.out, options_from(SampleOptions, ns))
    for split, m in manifests.items():
        print(f"{ns.out}/{split}: {m.num_records} records, {len(m.shards)} shards, {len(m.classes)} classes")
    return 0


def cmd_data_convert(ns: argparse.Namespace) -> int:
    from distributed_ssl.data.shard_sources import ConvertOptions, options_from, shard_sources

    report = shard_sources()[ns.modality].convert(ns.src, ns.out, options_from(ConvertOptions, ns))
    for split, m in report.manifests.items():
        print(f"{ns.out}/{split}: {m.num_records} records, {len(m.shards)} shards, classes: {m.classes or 'none'}")
    for skipped in report.skipped:
        print(f"skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    if report.skipped:
        print(report.summary(), file=sys.stderr)
    return 0


def cmd_data_inspect(ns: argparse.Namespace) -> int:
    from distributed_ssl.preview.inspect import describe, write_preview

    print(describe(ns.path))
    preview = ns.preview or str(Path(ns.path.rstrip("/")).name + "_preview.png")
    try:
        print(f"preview: {write_preview(ns.path, preview)}")
    except ValueError as exc:
        print(f"preview skipped: {exc}")
    return 0


def cmd_data_embed(ns: argparse.Namespace) -> int:
    from distributed_ssl.curation.embed import embed_shards

    meta = embed_shards(ns.run_dir, ns.shards, ns.out, actors=ns.actors, batch_size=ns.batch_size,
                        cpus_per_actor=ns.cpus_per_actor)
    print(f"{ns.out}: {meta['num_records']} embeddings of dim {meta['dim']} ({meta['actors']} actors, "
          f"{meta['gpus']} GPUs)")
    return 0


def cmd_data_prune(ns: argparse.Namespace) -> int:
    from distributed_ssl.curation.prune import PruneOptions, prune

    opts = PruneOptions(strategy=ns.strategy, keep=ns.keep, k=ns.k, prefer=ns.prefer, threshold=ns.threshold,
                        init=ns.init, iters=ns.iters, seed=ns.seed, write_shards=ns.write_shards)
    try:
        summary = prune(ns.shards, ns.out, opts, ns.embeddings)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(f"train on it: dssl train CONFIG data.train={ns.shards} data.keep_ids={summary['kept_ids']}")
    return 0


def cmd_config_show(ns: argparse.Namespace) -> int:
    import yaml

    from distributed_ssl.config import load_config

    path, overrides = _split_config_args(ns.args)
    cfg = load_config(path, overrides)
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def _config_or_resume(ns: argparse.Namespace, saved_config: str, missing: str):
    """`CONFIG [overrides]`, or with `--resume DIR` the config saved in DIR plus overrides."""
    from distributed_ssl.config import load_config

    path, overrides = _split_config_args(ns.args)
    if ns.resume:
        if path is not None:
            raise SystemExit("error: with --resume the saved config is used; pass only key=value overrides")
        from distributed_ssl.util import storage

        return load_config(storage.join(ns.resume, saved_config), overrides + [f"run.dir={ns.resume}"])
    if path is None:
        raise SystemExit(f"error: {missing}")
    return load_config(path, overrides)


def cmd_train(ns: argparse.Namespace) -> int:
    from distributed_ssl.launch.run_state import CONFIG_FILE
    from distributed_ssl.launch.summary import format_table
    from distributed_ssl.launch.trainer import run_training

    cfg = _config_or_resume(ns, CONFIG_FILE, "dssl train needs a CONFIG (e.g. jobs/configs/image_simclr.yaml) "
                                             "or --resume RUN_DIR")
    summary = run_training(cfg, resume=bool(ns.resume), overwrite=ns.overwrite)
    import ray

    ray.shutdown()  # flush the workers' buffered logs first, so the summary path is the last line printed
    print(format_table(summary))
    print(f"{summary['run_dir']}/summary.json")
    return 0


def cmd_tune(ns: argparse.Namespace) -> int:
    from distributed_ssl.launch.summary import format_rows
    from distributed_ssl.launch.sweep import SWEEP_CONFIG, run_sweep

    cfg = _config_or_resume(ns, SWEEP_CONFIG, "dssl tune needs a CONFIG with a tune: section, or --resume SWEEP_DIR")
    report = run_sweep(cfg, resume=bool(ns.resume), overwrite=ns.overwrite)
    print(format_rows(report["table"]))
    for key in ("trials", "stopped_early", "errors", "best_trial", "best_value", "best_overrides", "mlflow_run_id"):
        if key in report:
            print(f"{key}: {report[key]}")
    print(report.get("best_config", report["sweep_dir"]))
    if report["trials"] and report["errors"] == report["trials"]:
        print(f"error: every trial failed; see the errors in {report['sweep_dir']}/trials.csv", file=sys.stderr)
        return 1
    return 0


def cmd_eval(ns: argparse.Namespace) -> int:
    from distributed_ssl.evaluation.evaluate_run import evaluate_run
    from distributed_ssl.launch.summary import format_table

    result = evaluate_run(ns.run_dir, ns.data)
    print(format_table(result))
    if ns.out:
        Path(ns.out).write_text(json.dumps(result, indent=2))
    return 0


def cmd_export(ns: argparse.Namespace) -> int:
    from distributed_ssl.export.encoder_export import ExportError, ExportMismatchError, export_run

    try:
        report = export_run(ns.run_dir, ns.format, ns.out, records=ns.records, tolerance=ns.tolerance)
    except (ExportError, ExportMismatchError) as exc:  # a bad request; an exported model of the wrong shape
        raise SystemExit(f"error: {exc}") from exc
    shape = "×".join(str(n) for n in report.input_shape)
    print(f"wrote {report.path} ({report.format}: {report.encoder}, inputs {shape} → embeddings "
          f"batch×{report.embedding_dim})")
    print(f"architecture: {report.architecture_path}")
    print(f"checked on {report.records} records of {report.checked_on}: max abs difference "
          f"{report.max_abs_diff:.3g} (tolerance {report.tolerance:g})")
    if not report.ok:
        print(f"error: the exported encoder differs from the torch encoder by {report.max_abs_diff:.3g} > "
              f"{report.tolerance:g}; do not deploy {report.path}", file=sys.stderr)
        return 1
    return 0


def cmd_sync(ns: argparse.Namespace) -> int:
    from distributed_ssl.launch.run_state import RunState
    from distributed_ssl.tracking.mlflow_tracking import RunLogger
    from distributed_ssl.util.run_dir import RunDir

    run_dir = RunDir(ns.run_dir)
    state = RunState.load(run_dir)
    if state is None:
        print(f"error: {ns.run_dir} is not a run dir (no run.json)", file=sys.stderr)
        return 2
    logger = RunLogger(state.tracking_uri, state.mlflow_run_id, buffer_dir=run_dir, retries=ns.retries)
    try:
        sent = logger.flush()
    except Exception as exc:  # still unreachable: what was not sent stays in the buffer
        print(f"error: MLflow at {state.tracking_uri} is still unreachable ({str(exc).splitlines()[0][:200]}); "
              f"{logger.buffer.pending()} records stay in {logger.buffer.location}", file=sys.stderr)
        return 1
    print(f"synced {sent} buffered records to MLflow run {state.mlflow_run_id} at {state.tracking_uri}")
    return 0


def cmd_models(ns: argparse.Namespace) -> int:
    from distributed_ssl.methods.catalog import format_catalog

    print(format_catalog())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from distributed_ssl.cli_parsing import IntermixedArgumentParser, accept_verbose_everywhere

    # sub-parsers inherit the class: every command takes its options before or after its positionals
    p = IntermixedArgumentParser(prog="dssl", description="Self-supervised pretraining on Ray Train + DeepSpeed.",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="debug logging, and Ray's, DeepSpeed's and torch's own output on the console (without it "
                   "they go to RUN_DIR/logs/)")
    sub = p.add_subparsers(dest="command", required=True)
    _add_data_commands(sub)
    _add_run_commands(sub)
    _add_export_command(sub)

    from distributed_ssl.cli_ops import add_ops_commands

    add_ops_commands(sub)  # submit, jobs, retrain
    accept_verbose_everywhere(p)
    return p


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    """dssl data sample | convert | inspect | embed | prune."""
    from distributed_ssl.data.shard_sources import shard_sources

    data = sub.add_parser("data", help="make, convert and inspect shard folders")
    dsub = data.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("sample", help="write a built-in labeled sample set as train/ and val/ shards")
    sources = shard_sources()
    s.add_argument("modality", choices=list(sources),
                   help="; ".join(f"{name}: {source.sample}" for name, source in sources.items()))
    s.add_argument("out", help="output folder or URI")
    named = "; ".join(f"{name}: {', '.join(src.sets)}" for name, src in sources.items() if src.sets)
    s.add_argument("--set", default="", metavar="NAME",
                   help=f"a named set instead of the modality's default ({named})")
    s.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    s.add_argument("--per-class", type=int, default=None,
                   help="audio/lidar: records per word or scene type (default 60), or per object class (objects: 150)")
    s.add_argument("--sample-rate", type=int, default=16000, help="audio: Hz (default 16000)")
    s.add_argument("--beams", type=int, default=16, help="lidar: laser beams of the simulated sensor")
    s.add_argument("--range-noise", type=float, default=0.02, help="lidar: range noise sigma in metres")
    s.add_argument("--val-fraction", type=float, default=0.2)
    s.add_argument("--shard-size", type=int, default=None, help="records per Parquet shard (512; lidar 128)")
    s.set_defaults(fn=cmd_data_sample)
    c = dsub.add_parser("convert", help="convert a folder of files into shards (class sub-folders → labels)")
    c.add_argument("modality", choices=list(sources),
                   help="; ".join(f"{name}: {source.files}" for name, source in sources.items()))
    c.add_argument("src", help="source folder")
    c.add_argument("out", help="output folder or URI; train/ and val/ are written below it")
    c.add_argument("--shard-size", type=int, default=None, help="records per Parquet shard (1024; lidar 128)")
    c.add_argument("--sample-rate", type=int, default=16000, help="audio: resample every clip to this (Hz)")
    c.add_argument("--tile-size", type=float, default=50.0,
                   help="lidar: cut .las/.laz into ground tiles of this many metres (0: one record per file)")
    c.add_argument("--min-points", type=int, default=256, help="lidar: skip clouds or tiles with fewer points")
    c.add_argument("--val-fraction", type=float, default=0.1, help="0 writes train/ only")
    c.add_argument("--max-file-mb", type=float, default=512,
                   help="source files larger than this are not read: skipped, or with --on-bad fail an error "
                   "(default 512); every skipped file is reported with its reason, and symlinks out of SRC are "
                   "always skipped")
    c.add_argument("--on-bad", choices=["skip", "fail"], default="skip",
                   help="corrupt files: skip and report them (default), or stop")
    c.set_defaults(fn=cmd_data_convert)
    i = dsub.add_parser("inspect", help="counts, schema, label histogram and a preview PNG",
                        description="Print what a shard folder holds and draw its first records: images with "
                        "labels; log-mel spectrograms with labels (audio); top and side views coloured by height "
                        "(LiDAR).")
    i.add_argument("path", help="a shard folder or URI, or a parent of train/ and val/")
    i.add_argument("--preview", help="where to write the preview PNG (default NAME_preview.png here)")
    i.set_defaults(fn=cmd_data_inspect)
    em = dsub.add_parser("embed", help="embed every record with a trained encoder (Ray Data actor pool)")
    em.add_argument("run_dir", help="a finished `dssl train` run (encoder.pt + config.yaml)")
    em.add_argument("shards", help="shard folder or URI to embed")
    em.add_argument("out", help="output folder: id + embedding Parquet files and embeddings.json")
    em.add_argument("--actors", type=int, default=None,
                    help="encoder actors (default: one per GPU of the cluster, else 1)")
    em.add_argument("--batch-size", type=int, default=256, help="records per inference batch")
    em.add_argument("--cpus-per-actor", type=float, default=1.0)
    em.set_defaults(fn=cmd_data_embed)
    pr = dsub.add_parser("prune", help="keep a subset of a shard folder: prototype | semdedup | balanced | random",
                         epilog="writes OUT/kept_ids.json (train with data.keep_ids=OUT), scores.parquet, "
                         "score_histogram.png and, for images, prototypes.png")
    pr.add_argument("shards", help="the shard folder to prune")
    pr.add_argument("out", help="output folder")
    pr.add_argument("--embeddings", help="output of `dssl data embed` for these shards (all but random need it)")
    pr.add_argument("--strategy", choices=["prototype", "semdedup", "balanced", "random"], default="prototype")
    pr.add_argument("--keep", type=float, default=None, help="fraction of records kept, e.g. 0.7")
    pr.add_argument("-k", "--k", type=int, default=10, help="k-means clusters (default 10)")
    pr.add_argument("--prefer", choices=["hard", "easy"], default="hard",
                    help="prototype: keep the hardest records (abundant data) or the easiest (scarce data)")
    pr.add_argument("--threshold", type=float, default=None,
                    help="semdedup: of records in one cluster with cosine similarity above this, keep only one")
    pr.add_argument("--init", choices=["kmeans++", "random"], default="kmeans++", help="k-means seeding")
    pr.add_argument("--iters", type=int, default=300, help="mini-batch k-means steps")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--write-shards", action="store_true", help="also write OUT/shards with only the kept records")
    pr.set_defaults(fn=cmd_data_prune)


def _add_run_commands(sub: argparse._SubParsersAction) -> None:
    """dssl config show, train, tune, eval, models, sync."""
    cfg = sub.add_parser("config", help="show the resolved configuration")
    csub = cfg.add_subparsers(dest="config_command", required=True)
    show = csub.add_parser("show", help="print CONFIG with key=value overrides applied")
    show.add_argument("args", nargs="*", default=[], metavar="CONFIG [key=value ...]", help=CONFIG_ARGS_HELP)
    show.set_defaults(fn=cmd_config_show)

    t = sub.add_parser("train", help="pretrain an encoder", epilog="overrides: dotted keys such as train.epochs=5 "
                       "deepspeed.zero_stage=3 scaling.num_workers=2 run.dir=runs/a tracking.uri=http://host:5000")
    t.add_argument("args", nargs="*", default=[], metavar="CONFIG [key=value ...]", help=CONFIG_ARGS_HELP)
    t.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint")
    t.add_argument("--overwrite", action="store_true", help="delete an existing run in run.dir first")
    t.set_defaults(fn=cmd_train)

    tn = sub.add_parser("tune", help="Ray Tune sweep over augmentation/masking/optimizer keys",
                        epilog="the config's tune: section names the search space over dotted keys, e.g.\n"
                        "  tune:\n    space:\n      augment.crop_scale_min: uniform(0.08, 0.5)\n"
                        "      mask.ratio: choice([0.6, 0.75, 0.9])\n    num_samples: 8\n    scheduler: asha\n"
                        "writes RUN_DIR/best_config.yaml, trials.csv, objective_vs_params.png, learning_curves.png",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    tn.add_argument("args", nargs="*", default=[], metavar="CONFIG [key=value ...]", help=CONFIG_ARGS_HELP)
    tn.add_argument("--resume", metavar="SWEEP_DIR", help="finish an interrupted sweep; completed trials are kept")
    tn.add_argument("--overwrite", action="store_true", help="delete an existing sweep in run.dir first")
    tn.set_defaults(fn=cmd_tune)

    e = sub.add_parser("eval", help="kNN and linear probes and collapse metrics of a trained run on labeled shards")
    e.add_argument("run_dir")
    e.add_argument("--data", required=True, help="labeled shards (a train/val parent or one split)")
    e.add_argument("--out", help="also write the result as JSON here")
    e.set_defaults(fn=cmd_eval)

    m = sub.add_parser("models", help="list every encoder flavour (with its parameter count), method and modality",
                       description="Each encoder is built once on the CPU to count its parameters (a few seconds "
                       "for vit_base).")
    m.set_defaults(fn=cmd_models)

    sy = sub.add_parser("sync", help="send tracking records kept while MLflow was unreachable "
                        "(RUN_DIR/mlflow_buffer/) to the run's MLflow; RUN_DIR may be a URI")
    sy.add_argument("run_dir")
    sy.add_argument("--retries", type=int, default=2, help="retries per record before giving up (default 2)")
    sy.set_defaults(fn=cmd_sync)


def _add_export_command(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser("export", help="write a finished run's encoder as ONNX, safetensors or TorchScript, "
                        "checked against torch", formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Export the embed path of RUN_DIR's encoder (model-ready inputs [B, ...] → "
                        "embeddings [B, D]) and\ncheck it: the exported file is run through its own runtime on real "
                        "records of the\nrun's data.eval (else data.train), preprocessed as `dssl eval` does, and "
                        "compared with\nthe torch encoder. Exit status 1 when the largest difference exceeds "
                        "--tolerance.",
                        epilog="writes FILE and FILE.json (encoder name, flavour dims, build arguments, input shape, "
                        "the modality\nand model config sections); the same JSON is also stored inside the file.\n\n"
                        "examples:\n  dssl export runs/a --format onnx --out model/encoder.onnx\n"
                        "  dssl export runs/a --format safetensors   # runs/a/encoder.safetensors + .json")
    ex.add_argument("run_dir", help="a finished `dssl train` run (encoder.pt + config.yaml)")
    ex.add_argument("--format", required=True, choices=["onnx", "safetensors", "torchscript"],
                    help="onnx: onnxruntime and friends; safetensors: weights only, rebuilt from FILE.json; "
                    "torchscript: torch.jit.load, no dssl code needed")
    ex.add_argument("--out", metavar="FILE", help="output file (default RUN_DIR/encoder.onnx, "
                    "encoder.safetensors or encoder.torchscript.pt)")
    ex.add_argument("--records", type=int, default=8, help="records the check embeds (default 8, at least 2)")
    ex.add_argument("--tolerance", type=float, default=1e-4,
                    help="largest allowed absolute difference of any embedding value (default 1e-4, fp32)")
    ex.set_defaults(fn=cmd_export)


def use_ray_token_auth() -> None:
    """Token mode when a Ray token is on this machine, before Ray reads its settings: a cluster of
    `ray start --head` (Ray 2.60) refuses a driver that joins it without one."""
    import os

    from distributed_ssl.launch.ray_auth import find_auth_token

    # Ray reads the mode once, when it is first imported: setting it later (main() called in a process that already
    # uses Ray) would leave Ray's two halves disagreeing.
    if "RAY_AUTH_MODE" not in os.environ and "ray" not in sys.modules and find_auth_token():
        os.environ["RAY_AUTH_MODE"] = "token"


def main(argv: list[str] | None = None) -> int:
    from distributed_ssl.config.loader import ConfigError
    from distributed_ssl.config.overrides import OverrideError
    from distributed_ssl.data.manifest import DatasetError
    from distributed_ssl.engine.file_manifest import ManifestError
    from distributed_ssl.util.encoder_file import EncoderFileError
    from distributed_ssl.util.redaction import install_log_redaction, redact_text

    use_ray_token_auth()  # before anything imports Ray
    ns = build_parser().parse_args(argv)
    from distributed_ssl.launch.console import configure_console_logging

    configure_console_logging(ns.verbose)
    install_log_redaction()
    try:
        return ns.fn(ns)
    except (ConfigError, OverrideError, DatasetError, ManifestError, EncoderFileError) as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

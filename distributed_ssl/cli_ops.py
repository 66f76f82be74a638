"""`dssl submit`, `dssl jobs` and `dssl retrain`: the cluster-operations commands, registered by cli.py.

Kept apart from cli.py so that the everyday commands stay short to read; like them, these only parse
arguments, load the config and call the library.
"""

from __future__ import annotations

import argparse
import json
import sys

from distributed_ssl.util.redaction import redact_text

SUBMIT_EPILOG = """The config is validated here before anything is uploaded; paths in it (data.train, data.eval,
run.dir) must be absolute paths on storage the cluster sees, or URIs. The job runs
`python -m distributed_ssl.cli train|tune CONFIG` with this checkout's distributed_ssl package shipped as a
py_module, so the cluster runs exactly this code. Token authentication (on by default with Ray 2.60 `ray start --head`) is
handled: the token is read from $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token.

examples:
  ray dashboard cluster.yaml            # forwards the cluster's dashboard to http://127.0.0.1:8265
  dssl submit jobs/configs/image_simclr.yaml data.train=s3://bucket/photos/train run.dir=/shared/runs/a
  dssl submit jobs/configs/image_simclr.yaml --tune --address http://127.0.0.1:8265 --wait
"""

RETRAIN_EPILOG = """A pass: (1) compares the shard checksums in data.train/manifest.json with the data of the last
trained model version; none new -> prints `no new data`, exits 0; (2) otherwise warm-starts from the version the
alias (retrain.alias, default champion) marks, trains, and probes new and champion encoders on data.eval;
(3) registers the new encoder as a version of retrain.model_name and moves the alias only if
new >= champion - retrain.tolerance; the decision and reason go to MLflow tags and retrain.history_file;
(4) holds a lock: a pass that finds another running exits with status 75 saying which process holds it.

State lives under retrain.root (default runs/retrain): passes/, history.jsonl, retrain.lock, and mlflow.db
(the registry) unless tracking.uri is set.

examples:
  dssl retrain jobs/configs/image_simclr.yaml data.train=/data/photos/train data.eval=/data/photos_eval
  dssl retrain jobs/configs/image_simclr.yaml --every 6h
  cron: 0 */6 * * * cd /srv/dssl && .venv/bin/dssl retrain jobs/configs/image_simclr.yaml >> runs/retrain/cron.log 2>&1
"""


def _address_arg(parser: argparse.ArgumentParser) -> None:
    from distributed_ssl.launch.job_submission import default_address

    parser.add_argument("--address", default=default_address(),
                        help="the cluster's dashboard / Jobs API URL (default: $RAY_API_SERVER_ADDRESS, an http "
                             "$RAY_ADDRESS, else http://127.0.0.1:8265, where `ray dashboard cluster.yaml` "
                             "forwards it)")


def _jobs_api_errors(fn):
    """Turn an unreachable or refusing Jobs API into one `error:` line and exit status 2."""
    def wrapped(ns: argparse.Namespace) -> int:
        try:
            return fn(ns)
        except (ConnectionError, RuntimeError) as exc:
            print(f"error: {redact_text(str(exc))}", file=sys.stderr)
            return 2
    return wrapped


@_jobs_api_errors
def cmd_submit(ns: argparse.Namespace) -> int:
    from distributed_ssl.launch.job_submission import submit, wait_for_job

    sub = submit(ns.config, ns.overrides, ns.address, tune=ns.tune, submission_id=ns.submission_id)
    print(redact_text(f"submitted {sub.submission_id} to {ns.address}: {sub.entrypoint}"))
    print(redact_text(f"  follow it:   dssl jobs logs {sub.submission_id} --follow --address {ns.address}"))
    print(redact_text(f"  MLflow run:  name {sub.cfg.run.name}, "
                      f"tracking.uri {sub.cfg.tracking.uri or 'sqlite in run.dir'}"))
    if not ns.wait:
        return 0
    status = wait_for_job(ns.address, sub.submission_id, timeout_s=ns.timeout, out=sys.stdout)
    print(f"job {sub.submission_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


@_jobs_api_errors
def cmd_jobs(ns: argparse.Namespace) -> int:
    from distributed_ssl.launch import job_submission as js

    if ns.jobs_command == "list":
        js.print_jobs(js.list_jobs(ns.address))
    elif ns.jobs_command == "status":
        print(json.dumps(js.job_info(ns.address, ns.job_id), indent=2))
    elif ns.jobs_command == "logs":
        if ns.follow:
            status = js.wait_for_job(ns.address, ns.job_id, out=sys.stdout)
            print(f"job {ns.job_id}: {status}")
        else:
            print(js.job_logs(ns.address, ns.job_id), end="")
    elif ns.jobs_command == "stop":
        stopped = js.stop_job(ns.address, ns.job_id)
        print(f"{ns.job_id}: {'stop requested' if stopped else 'already finished'}")
    return 0


def cmd_retrain(ns: argparse.Namespace) -> int:
    from distributed_ssl.config import load_config
    from distributed_ssl.retrain.retrain_pass import run_pass
    from distributed_ssl.retrain.scheduler import parse_period, run_every

    path, overrides = ns.config, ns.overrides

    def report(result) -> None:
        if result.status == "skipped":
            print(f"no new data ({result.reason})")
        elif result.status in ("promoted", "rejected"):
            print(f"version {result.version} {result.status}: {result.reason}")
        else:
            print(f"{result.status}: {result.reason}", file=sys.stderr)

    if ns.every is None:
        result = run_pass(load_config(path, overrides))
        report(result)
        return result.exit_code
    try:
        period = parse_period(ns.every)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    load_config(path, overrides)  # fail now on a bad config rather than at the first pass
    run_every(lambda: load_config(path, overrides), period, ns.max_passes, on_result=report)
    return 0


def add_ops_commands(sub: argparse._SubParsersAction) -> None:
    """Register submit, jobs and retrain on the `dssl` sub-command parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    s = sub.add_parser("submit", help="run `dssl train` (or `dssl tune`) on a Ray cluster via the Jobs API",
                       description="Validate CONFIG locally, then submit it as a Ray job.", epilog=SUBMIT_EPILOG,
                       formatter_class=fmt)
    s.add_argument("config", help="YAML config (e.g. jobs/configs/image_simclr.yaml)")
    s.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="dotted overrides, e.g. train.epochs=5 (options may also follow them)")
    s.add_argument("--tune", action="store_true", help="submit `dssl tune` (a sweep) instead of `dssl train`")
    _address_arg(s)
    s.add_argument("--submission-id", help="job id to use (default dssl-train|tune-DATE-TIME-RANDOM); it also "
                                           "becomes run.name unless the config sets one")
    s.add_argument("--wait", action="store_true", help="stream the job's logs until it ends; exit 0 only if it "
                                                       "SUCCEEDED")
    s.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    s.set_defaults(fn=cmd_submit)

    j = sub.add_parser("jobs", help="list, inspect, read logs of, or stop Ray jobs")
    jsub = j.add_subparsers(dest="jobs_command", required=True)
    lst = jsub.add_parser("list", help="every job on the cluster, oldest first")
    _address_arg(lst)
    for name, text in (("status", "status, message and exit code of a job"),
                       ("logs", "the job driver's output"), ("stop", "stop a running job")):
        p = jsub.add_parser(name, help=text)
        p.add_argument("job_id", help="the submission id `dssl submit` printed")
        _address_arg(p)
        if name == "logs":
            p.add_argument("--follow", action="store_true", help="keep printing until the job ends")
    j.set_defaults(fn=cmd_jobs)

    r = sub.add_parser("retrain", help="one scheduled-retraining pass (or one every --every period)",
                       description="Retrain on new shards and promote the result only if it is not worse than "
                                   "the production (alias) encoder.", epilog=RETRAIN_EPILOG, formatter_class=fmt)
    r.add_argument("config", help="YAML config (e.g. jobs/configs/image_simclr.yaml)")
    r.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="dotted overrides, e.g. train.epochs=5 (options may also follow them)")
    r.add_argument("--every", metavar="PERIOD", help="keep running a pass every PERIOD (30m, 6h, 1d), start to "
                                                     "start, in the foreground")
    r.add_argument("--max-passes", type=int, help="with --every: stop after this many passes")
    r.set_defaults(fn=cmd_retrain)

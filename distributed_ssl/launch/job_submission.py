"""`dssl submit` and `dssl jobs`: run `dssl train` / `dssl tune` on a Ray cluster through the Ray Jobs API.

The job carries its own code and config: the `distributed_ssl` package goes up as a `py_modules` entry (so the
cluster runs exactly the code on this machine, not whatever version its image has) and the fully resolved config
is the job's `working_dir`. Everything is validated here first, so a typo fails in a second on the laptop, not
after an upload and a queue wait on the cluster.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from distributed_ssl.config.loader import ConfigError, load_config, save_config
from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.launch.ray_auth import auth_headers
from distributed_ssl.launch.ray_runtime import package_runtime_env

JOB_CONFIG_NAME = "dssl_job_config.yaml"
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
# Config keys that hold paths: on the cluster they are read from inside the job's own working directory.
PATH_KEYS = ("data.train", "data.eval", "data.keep_ids", "run.dir", "model.init_from")


@dataclass
class Submission:
    """What `submit_job` sends: the entrypoint, its runtime environment and the config it was built from."""

    submission_id: str
    entrypoint: str
    runtime_env: dict[str, Any]
    cfg: SSLConfig


def default_address() -> str:
    """`$RAY_API_SERVER_ADDRESS`, an http `$RAY_ADDRESS`, else the dashboard on this machine."""
    for var in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        value = os.environ.get(var, "")
        if value.startswith(("http://", "https://")):
            return value
    return DEFAULT_ADDRESS


def _dotted(cfg: SSLConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part, None)
    return node


def check_cluster_paths(cfg: SSLConfig) -> None:
    """Refuse relative local paths: the job runs in a temporary directory on the cluster, where they mean nothing."""
    for key in PATH_KEYS:
        value = _dotted(cfg, key)
        if isinstance(value, str) and "://" not in value and not Path(value).expanduser().is_absolute():
            raise ConfigError(
                f"{key}={value} is a relative path: a submitted job runs in its own working directory on the "
                f"cluster; give an absolute path on storage every node sees (shared disk) or a URI (s3://, gs://)")
    uri = cfg.tracking.uri
    if uri and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        raise ConfigError(f"tracking.uri={uri} is a relative SQLite path; use sqlite:////absolute/path.db or a "
                          "tracking server (http://...)")


def prepare_submission(config_path: str, overrides: list[str], tune: bool = False,
                       submission_id: str | None = None) -> tuple[Submission, Path]:
    """Validate the config, write it resolved into a fresh staging folder, build the entrypoint and runtime_env.

    Returns the submission and the staging folder (the caller removes it once the job is submitted: the Jobs
    client uploads its contents at submission time).
    """
    cfg = load_config(config_path, overrides)
    check_cluster_paths(cfg)
    command = "tune" if tune else "train"
    submission_id = submission_id or f"dssl-{command}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    if cfg.run.name is None:  # the MLflow run is then found by the job's id
        cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"name": submission_id})})
    staging = Path(tempfile.mkdtemp(prefix="dssl-submit-"))
    save_config(cfg, staging / JOB_CONFIG_NAME)
    runtime_env = {
        "working_dir": str(staging),  # holds only the resolved config
        **package_runtime_env(),  # the whole package, its `data` sub-package included
        # No env_vars: the job's driver calls ray.init with its own, and Ray refuses to merge two env_vars fields.
    }
    # `python -m` rather than the `dssl` script: it needs only the shipped package, not an install on PATH.
    entrypoint = f"python -m distributed_ssl.cli {command} {JOB_CONFIG_NAME}"
    return Submission(submission_id, entrypoint, runtime_env, cfg), staging


def jobs_client(address: str):
    """A JobSubmissionClient that authenticates to clusters with Ray token authentication."""
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address, headers=auth_headers())
    except ConnectionError as exc:
        reason = str(exc).rstrip(".")
        raise ConnectionError(f"no Ray Jobs API at {address}: {reason}. Is the cluster up, and is the dashboard "
                              "forwarded (`ray dashboard cluster.yaml`)?") from None


def submit(config_path: str, overrides: list[str], address: str, tune: bool = False,
           submission_id: str | None = None) -> Submission:
    """Validate locally, then submit; returns the submission (its id names the job and the MLflow run)."""
    import shutil

    submission, staging = prepare_submission(config_path, overrides, tune, submission_id)
    try:
        client = jobs_client(address)
        client.submit_job(entrypoint=submission.entrypoint, runtime_env=submission.runtime_env,
                          submission_id=submission.submission_id,
                          metadata={"dssl_command": "tune" if tune else "train", "config": str(config_path)})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return submission


def wait_for_job(address: str, job_id: str, timeout_s: float | None = None, out: TextIO | None = None,
                 poll_s: float = 2.0) -> str:
    """Poll until the job ends (printing new log lines to `out` if given); returns the final status."""
    client = jobs_client(address)
    start, printed = time.monotonic(), 0
    while True:
        status = str(client.get_job_status(job_id).value)
        if out is not None:
            logs = client.get_job_logs(job_id)
            out.write(logs[printed:])
            out.flush()
            printed = len(logs)
        if status in TERMINAL:
            return status
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"job {job_id} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def list_jobs(address: str) -> list[dict[str, Any]]:
    """Every job the cluster knows, oldest first, as plain dicts."""
    rows = []
    for job in jobs_client(address).list_jobs():
        rows.append({"submission_id": job.submission_id, "status": str(job.status.value),
                     "entrypoint": job.entrypoint, "start_time": job.start_time, "end_time": job.end_time,
                     "message": job.message})
    return sorted(rows, key=lambda r: r["start_time"] or 0)


def job_info(address: str, job_id: str) -> dict[str, Any]:
    """Status, message and timing of one job."""
    info = jobs_client(address).get_job_info(job_id)
    return {"submission_id": info.submission_id, "status": str(info.status.value), "message": info.message,
            "entrypoint": info.entrypoint, "start_time": info.start_time, "end_time": info.end_time,
            "driver_exit_code": info.driver_exit_code}


def job_logs(address: str, job_id: str) -> str:
    """The job driver's complete output so far."""
    return jobs_client(address).get_job_logs(job_id)


def stop_job(address: str, job_id: str) -> bool:
    """Ask the cluster to stop a job; False when it had already ended."""
    return bool(jobs_client(address).stop_job(job_id))


def print_jobs(rows: list[dict[str, Any]], out: TextIO | None = None) -> None:
    """One line a job: id, status, start time, entrypoint."""
    out = out or sys.stdout
    if not rows:
        out.write("no jobs\n")
        return
    for r in rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["start_time"] / 1000)) \
            if r["start_time"] else "-"
        out.write(f"{r['submission_id'] or '-':40s} {r['status']:10s} {started}  {r['entrypoint'] or '-'}\n")

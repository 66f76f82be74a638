"""A real `ray start --head` for tests, on non-default ports, stopped by process id.

`ray stop` would kill every Ray process of this user on the machine, including other people's clusters and
test sessions; instead the head runs with `--block` in its own session and teardown terminates exactly the
process tree it started (the GCS, raylet, dashboard, workers, and any fake worker nodes the autoscaler added).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

VENV_BIN = str(Path(sys.executable).parent)


@dataclass
class RayHead:
    port: int
    dashboard_port: int | None
    proc: subprocess.Popen
    temp_dir: str
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def ray_command(python: str | None) -> list[str]:
    """`ray` of this venv, or Ray's CLI run by another interpreter (e.g. a node venv without distributed_ssl)."""
    return [f"{VENV_BIN}/ray"] if python is None else [python, "-m", "ray.scripts.scripts"]


def ensure_auth_token() -> None:
    """`ray get-auth-token --generate` when no token is found: `ray start --head` turns token authentication on
    only when a token already exists (a first local `ray.init()` would write one), and the heads here must run
    with it on, as on a cluster, on a fresh machine too."""
    from distributed_ssl.launch.ray_auth import find_auth_token

    if find_auth_token() is None:
        subprocess.run([*ray_command(None), "get-auth-token", "--generate"], check=True, capture_output=True,
                       timeout=60)


def start_head(port: int, num_cpus: int, log_dir: Path, dashboard_port: int | None = None,
               autoscaling_config: Path | None = None, env: dict[str, str] | None = None,
               timeout_s: float = 120, python: str | None = None) -> RayHead:
    """Start the head, with token authentication on, and wait until its GCS (and dashboard, if any) answers."""
    ensure_auth_token()
    temp_dir = tempfile.mkdtemp(prefix="dssl-ray-", dir="/tmp")  # short: Unix socket paths are limited to 107 bytes
    cmd = [*ray_command(python), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
           f"--num-cpus={num_cpus}", "--object-store-memory=400000000", f"--temp-dir={temp_dir}",
           "--disable-usage-stats", f"--dashboard-agent-listen-port={port + 46000}",
           # Ray's default (10001) is one port for every head, so two heads of parallel test workers would collide;
           # above the worker ports (10002-19999)
           f"--ray-client-server-port={port + 20000}"]
    if dashboard_port is None:
        cmd.append("--include-dashboard=false")
    else:
        cmd += ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"]
    if autoscaling_config is not None:
        cmd.append(f"--autoscaling-config={autoscaling_config}")
    bin_dir = VENV_BIN if python is None else str(Path(python).parent)
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", **(env or {})}
    full_env.pop("RAY_ADDRESS", None)
    full_env.setdefault("RAY_AUTH_MODE", "token")
    log_path = log_dir / f"ray-head-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
    head = RayHead(port, dashboard_port, proc, temp_dir, log_path, env or {})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{head.log_tail()}")
        if _ready(head):
            return head
        time.sleep(1)
    stop_head(head)
    raise TimeoutError(f"Ray head on port {port} not ready after {timeout_s:.0f} s:\n{head.log_tail()}")


def start_worker_node(head: RayHead, num_cpus: int, log_dir: Path, name: str, env: dict[str, str] | None = None,
                      python: str | None = None, timeout_s: float = 120) -> RayHead:
    """Join one more node (its own raylet and object store) to `head`'s cluster; stop it with `stop_head`."""
    cmd = [*ray_command(python), "start", "--block", f"--address={head.gcs_address}", "--node-ip-address=127.0.0.1",
           f"--num-cpus={num_cpus}", "--object-store-memory=300000000", "--disable-usage-stats"]
    bin_dir = VENV_BIN if python is None else str(Path(python).parent)
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", **(env or {})}
    full_env.pop("RAY_ADDRESS", None)
    full_env.setdefault("RAY_AUTH_MODE", "token")  # the head turned token auth on; the token is ~/.ray/auth_token
    log_path = log_dir / f"ray-node-{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
    node = RayHead(head.port, None, proc, tempfile.mkdtemp(prefix="dssl-ray-node-"), log_path, env or {})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start (node {name}) exited with {proc.returncode}:\n{node.log_tail()}")
        if b"Ray runtime started" in log_path.read_bytes():
            return node
        time.sleep(1)
    stop_head(node)
    raise TimeoutError(f"Ray node {name} did not join {head.gcs_address} in {timeout_s:.0f} s:\n{node.log_tail()}")


def _ready(head: RayHead) -> bool:
    if b"Ray runtime started" not in head.log_path.read_bytes():
        return False
    if head.dashboard_port is None:
        return True
    from distributed_ssl.launch.ray_auth import auth_headers

    try:
        req = urllib.request.Request(f"{head.dashboard_url}/api/version", headers=auth_headers())
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def stop_head(head: RayHead, grace_s: float = 3) -> None:
    """Terminate the head's whole process tree (by pid), then remove its temp dir.

    The grace is short: a head's GCS server, its autoscaler monitor and `ray start --block` itself outlive a SIGTERM
    by more than 15 s (they wait for each other), and nothing of a test's cluster needs a graceful end."""
    try:
        root = psutil.Process(head.proc.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    # Also whatever re-parented itself but stayed in the head's session (start_new_session: sid == head pid).
    procs += [p for p in psutil.process_iter() if p not in procs and process_session(p) == head.proc.pid]
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    shutil.rmtree(head.temp_dir, ignore_errors=True)


def process_session(proc: psutil.Process) -> int | None:
    """The session id of `proc`: a node started here leads its own session, its raylet's workers included."""
    try:
        return os.getsid(proc.pid)
    except (ProcessLookupError, PermissionError):
        return None

"""Checks before a run starts on a cluster: storage every node reaches, and a tracking store every node reaches.

A multi-node run whose run dir or tracking store is some node's local disk "succeeds" and leaves its files where
nobody finds them; a missing bucket or missing credentials would otherwise surface as a traceback from inside a
worker, retried by Ray's FailureConfig. Each check here fails first, with exit status 2, naming the URI and why.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from dataclasses import dataclass

import ray

from distributed_ssl.config.loader import ConfigError
from distributed_ssl.data.manifest import MANIFEST_NAME
from distributed_ssl.util import storage

log = logging.getLogger("distributed_ssl.launch")
PREFLIGHT_DIR = ".dssl-preflight"
PREFLIGHT_TIMEOUT_S = 120.0
# Tracking stores that live on one machine's disk.
LOCAL_TRACKING_SCHEMES = ("sqlite:", "file:")


@dataclass(frozen=True)
class ClusterShape:
    alive_nodes: int
    autoscaler: bool

    @property
    def is_multi_node(self) -> bool:
        """More than one node now, or an autoscaler that can add some."""
        return self.alive_nodes > 1 or self.autoscaler


def cluster_shape() -> ClusterShape:
    """The connected Ray cluster's alive nodes, and whether an autoscaler runs on it."""
    alive = sum(1 for node in ray.nodes() if node.get("Alive"))
    return ClusterShape(alive, _has_autoscaler())


def _has_autoscaler() -> bool:
    """Whether an autoscaler with node types of its own (a cloud, KubeRay or fake multi-node provider) runs.

    Every head runs the autoscaler's monitor; without a provider it is read-only and names each node's type
    after the node itself (`node_<id>`), so declared node types or pending launches are the sign of a real one.
    """
    try:
        from ray.experimental.internal_kv import _internal_kv_get

        status = _internal_kv_get("__autoscaling_status")
        report = json.loads(status).get("autoscaler_report") or {} if status else {}
    except Exception:  # an API moved in a Ray upgrade: fall back to counting nodes
        return False
    types = (report.get("node_type_mapping") or {}).values()
    declared = any(not str(t).startswith("node_") for t in types)
    return declared or bool(report.get("pending_nodes")) or bool(report.get("pending_launches"))


def is_local_tracking_store(uri: str) -> bool:
    return uri.startswith(LOCAL_TRACKING_SCHEMES) or "://" not in uri


def check_tracking_store(tracking_uri: str, shape: ClusterShape) -> None:
    """Refuse a SQLite or file store on a cluster: rank 0 on another node would write to its own disk."""
    if shape.is_multi_node and is_local_tracking_store(tracking_uri):
        where = f"{shape.alive_nodes} nodes alive" + (", autoscaler on" if shape.autoscaler else "")
        raise ConfigError(
            f"tracking.uri={tracking_uri} is a store on one machine's disk, but this cluster has {where}: the "
            "rank-0 worker may run on another node and write to its own disk. Run an MLflow server that every "
            "node reaches, with artifacts proxied through it so no client needs a shared disk, e.g.\n"
            "  mlflow server --host 0.0.0.0 --port 5000 --backend-store-uri sqlite:///mlflow.db "
            "--artifacts-destination s3://BUCKET/mlartifacts --serve-artifacts\n"
            "and set tracking.uri=http://HOST:5000")


def check_writable(location: str, key: str = "run.dir") -> None:
    """Write and delete a probe file under `location` from here: a missing bucket or credentials fail now."""
    probe = storage.join(location, PREFLIGHT_DIR, f"driver-{uuid.uuid4().hex[:8]}")
    try:
        fs, path = storage.resolve(probe)
        storage.write_text(fs, path, "dssl")
        fs.delete_file(path)
    except (OSError, ValueError) as exc:  # pyarrow raises OSError for S3 errors, ValueError for bad URIs
        raise ConfigError(f"{key}={location} cannot be written: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:400] if text else type(exc).__name__


@ray.remote(num_cpus=0, max_retries=0)
def _node_check(run_dir: str, token_path: str, token: str, manifests: list[str]) -> str | None:
    """On one node: read the driver's token, write this node's marker, read each manifest; None when all work."""
    node = f"{ray.get_runtime_context().get_node_id()[:12]} ({socket.gethostname()})"
    try:
        fs, path = storage.resolve(token_path)
        if storage.read_text(fs, path) != token:
            return f"node {node}: {token_path} holds another run's token"
    except (OSError, ValueError) as exc:
        return f"node {node} cannot read {token_path}, which the driver wrote: {_first_line(exc)}"
    marker = storage.join(run_dir, PREFLIGHT_DIR, f"node-{ray.get_runtime_context().get_node_id()}")
    try:
        fs, path = storage.resolve(marker)
        storage.write_text(fs, path, token)
    except (OSError, ValueError) as exc:
        return f"node {node} cannot write under run.dir={run_dir}: {_first_line(exc)}"
    for manifest in manifests:
        try:
            fs, path = storage.resolve(manifest)
            storage.read_text(fs, path)
        except (OSError, ValueError) as exc:
            return f"node {node} cannot read {manifest}: {_first_line(exc)}"
    return None


def preflight(run_dir: str, data_dirs: list[str], timeout_s: float = PREFLIGHT_TIMEOUT_S) -> int:
    """Every alive node reads a token the driver wrote under `run_dir`, writes its own, and reads each data
    folder's manifest; the driver then reads every node's marker. Returns the number of nodes checked.

    A local run dir passes only where the nodes share that disk: a node that sees another disk does not find
    the driver's token.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    token_path = storage.join(run_dir, PREFLIGHT_DIR, "driver")
    fs, path = storage.resolve(token_path)
    storage.write_text(fs, path, token)
    manifests = [storage.join(d, MANIFEST_NAME) for d in data_dirs]
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = {n["NodeID"]: _node_check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(run_dir, token_path, token, manifests) for n in nodes}
    try:
        ready, pending = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
        if pending:
            stuck = [node for node, ref in refs.items() if ref in pending]
            raise ConfigError(f"preflight: node(s) {', '.join(s[:12] for s in stuck)} did not answer within "
                              f"{timeout_s:.0f} s (no free slot, or the node is unhealthy)")
        problems = [p for p in ray.get(ready) if p]
        if problems:
            raise ConfigError("preflight: not every node reaches the run's storage:\n  " + "\n  ".join(problems))
        for node in refs:
            marker = storage.join(run_dir, PREFLIGHT_DIR, f"node-{node}")
            mfs, mpath = storage.resolve(marker)
            if not storage.exists(mfs, mpath):
                raise ConfigError(f"preflight: node {node[:12]} wrote {marker}, but the driver does not see it: "
                                  "run.dir is not on storage shared by every node (use s3://, gs:// or a shared "
                                  "mount)")
    finally:
        storage.delete_tree(*storage.resolve(storage.join(run_dir, PREFLIGHT_DIR)))
    log.info("preflight: %d nodes reach %s and %s", len(nodes), run_dir, ", ".join(data_dirs))
    return len(nodes)

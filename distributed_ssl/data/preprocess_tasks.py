"""How many Ray Data preprocessing tasks may run at once.

Each preprocessing task runs in a Ray worker process that imports torch and the modality code when it starts (a few
seconds of CPU). Ray Data starts as many tasks as there are free logical CPU slots; a laptop's or a test's local Ray
declares more logical CPUs than the machine has cores (so train workers and data tasks both get slots), and on two
cores eight tasks starting at once cost more than the whole epoch they produce. When every Ray node runs on this
machine, the tasks are therefore capped at its core count; a cluster of several machines is left to Ray Data.
"""

from __future__ import annotations

import socket

import ray
import ray.data

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.util.machine import machine_cores


def all_nodes_on_this_machine() -> bool:
    """True when every alive Ray node has this machine's address (a local Ray, or a fake multi-node cluster)."""
    here = {ray.util.get_node_ip_address(), "127.0.0.1", socket.gethostbyname("localhost")}
    return all(node["NodeManagerAddress"] in here for node in ray.nodes() if node["Alive"])


def preprocess_concurrency(cfg: SSLConfig) -> int | None:
    """`data.preprocess_tasks` when set; else the core count on a one-machine Ray, else None (Ray Data decides)."""
    if cfg.data.preprocess_tasks is not None:
        return cfg.data.preprocess_tasks
    return machine_cores() if all_nodes_on_this_machine() else None


def preprocess_compute(cfg: SSLConfig) -> ray.data.TaskPoolStrategy:
    """The task pool of a preprocessing step, capped at `preprocess_concurrency` (Ray Data's `compute=`; its
    `concurrency=` is deprecated). Every step of a pipeline gets an equal pool, so Ray Data can fuse them."""
    return ray.data.TaskPoolStrategy(size=preprocess_concurrency(cfg))

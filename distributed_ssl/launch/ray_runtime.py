"""Start or join Ray with settings that do not deadlock on small machines."""

from __future__ import annotations

import math
import os

import ray

from distributed_ssl.config.schema import SSLConfig


def ensure_ray(cfg: SSLConfig, min_cpus: float = 0) -> None:
    """Join `run.ray_address` / `RAY_ADDRESS` if given, else start a local Ray sized for this run.

    Locally, Ray gets more logical CPUs than the machine has cores: training workers and Ray Data tasks
    would otherwise wait on each other for CPU slots.
    """
    if ray.is_initialized():
        return
    address = cfg.run.ray_address or os.environ.get("RAY_ADDRESS")
    env = {"env_vars": {"PYTHONWARNINGS": "ignore::DeprecationWarning"}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=True)
        return
    needed = max(math.ceil(cfg.scaling.num_workers * cfg.scaling.cpus_per_worker) + 2, math.ceil(min_cpus))
    num_cpus = cfg.run.ray_num_cpus or max(needed, 4, os.cpu_count() or 1)
    # address="local": never attach to some other cluster `ray start` left on this machine.
    ray.init(address="local", num_cpus=num_cpus, object_store_memory=cfg.run.object_store_mb * 1024 * 1024,
             dashboard_host="127.0.0.1", runtime_env=env, log_to_driver=True)

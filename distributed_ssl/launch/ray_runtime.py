"""Start or join Ray with settings that do not deadlock on small machines."""

from __future__ import annotations

import importlib
import logging
import math
import os
from pathlib import Path
from typing import Any

import ray

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.launch.console import is_verbose
from distributed_ssl.util.machine import machine_cores

log = logging.getLogger("distributed_ssl.ray")


PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Never part of the uploaded package: byte code and build leftovers. Patterns are relative to the package folder.
PACKAGE_EXCLUDES = ["__pycache__", "*.pyc", "*.egg-info"]


def package_runtime_env() -> dict[str, Any]:
    """This checkout's `distributed_ssl` as a `py_modules` upload, so every node runs exactly this code even
    where its Python has no distributed_ssl installed."""
    return {"py_modules": [str(PACKAGE_DIR)], "excludes": PACKAGE_EXCLUDES}


def in_submitted_job() -> bool:
    """True inside a Ray Jobs driver, whose runtime_env (set by `dssl submit`) already ships the package."""
    return bool(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"))


def ensure_ray(cfg: SSLConfig, min_cpus: float = 0) -> None:
    """Join `run.ray_address` / `RAY_ADDRESS` if given, else start a local Ray sized for this run.

    Joining a cluster from outside a submitted job ships the package with the job (see
    `package_runtime_env`). Locally, Ray gets more logical CPUs than the machine has cores: training workers
    and Ray Data tasks would otherwise wait on each other for CPU slots.
    """
    if ray.is_initialized():
        return
    address = cfg.run.ray_address or os.environ.get("RAY_ADDRESS")
    env: dict[str, Any] = {"env_vars": {"PYTHONWARNINGS": "ignore::DeprecationWarning"}}
    if address:
        if in_submitted_job():  # the job's runtime_env already ships the package; Ray merges only new fields
            ray.init(address=address, runtime_env=env, log_to_driver=is_verbose())
        else:
            ray.init(address=address, runtime_env={**env, **package_runtime_env()}, log_to_driver=is_verbose())
        keep_ray_data_helpers_on_this_node()
        return
    needed = max(math.ceil(cfg.scaling.num_workers * cfg.scaling.cpus_per_worker) + 2, math.ceil(min_cpus))
    num_cpus = cfg.run.ray_num_cpus or max(needed, 4, machine_cores())
    # address="local": never attach to some other cluster `ray start` left on this machine.
    ray.init(address="local", num_cpus=num_cpus, object_store_memory=cfg.run.object_store_mb * 1024 * 1024,
             dashboard_host="127.0.0.1", runtime_env=env, log_to_driver=is_verbose())


# Read by Ray Train's controller; Ray passes them from the process that builds the TorchTrainer to the controller.
TRAIN_POLL_ENV_VAR = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
PREEMPTION_WATCHER_ENV_VAR = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"


def runs_on_a_local_ray(cfg: SSLConfig) -> bool:
    """The run starts (or shares) a Ray on this machine, not one at an address: a cluster's nodes may be drained
    (preempted), this machine's one node is not."""
    return not (cfg.run.ray_address or os.environ.get("RAY_ADDRESS") or in_submitted_job())


def set_train_controller_env(cfg: SSLConfig) -> None:
    """Settings of the next TorchTrainer's controller, set in this process's environment because that is where Ray
    Train reads them, here and in a sweep's trial:

    - it polls its workers every `run.poll_interval_s` (see its help);
    - on a local Ray it starts no preemption watcher, an actor of its own (about 3 s of CPU a run, measured) that
      watches for nodes being drained, which a single local node never is; on a cluster it does.
    """
    os.environ[TRAIN_POLL_ENV_VAR] = repr(cfg.run.poll_interval_s)
    os.environ[PREEMPTION_WATCHER_ENV_VAR] = "0" if runs_on_a_local_ray(cfg) else "1"


# Ray Data's detached, named helper actors, each made by a get-or-create function that places it on the
# calling node (private Ray APIs, looked up by name so that a Ray upgrade degrades to a warning).
RAY_DATA_HELPER_FACTORIES = [
    ("ray.data._internal.stats", "get_or_create_stats_actor"),
    ("ray.data._internal.stats_summary_actor", "_get_or_create_stats_summary_actor"),
    ("ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator",
     "get_or_create_autoscaling_coordinator"),
    ("ray.data._internal.usage.actor", "get_or_create_usage_collection_actor"),
    ("ray.data._internal.execution.node_trackers.actor_location", "get_or_create_actor_location_tracker"),
]


def keep_ray_data_helpers_on_this_node() -> None:
    """Create Ray Data's detached helper actors here, on the driver's node, before any dataset runs.

    Ray Data creates them, detached, on the node where a dataset first executes. On an autoscaling cluster that
    is a worker node running a trial or a training worker, and a node holding an actor never becomes idle, so the
    autoscaler could never remove it. Created first by the driver (on the head), they are found there by name.
    """
    for module_name, factory in RAY_DATA_HELPER_FACTORIES:
        try:
            getattr(importlib.import_module(module_name), factory)()
        except Exception as exc:
            log.warning("could not place Ray Data's %s on the driver's node (%s): an idle worker node that "
                        "holds it will not be scaled down", factory, exc)

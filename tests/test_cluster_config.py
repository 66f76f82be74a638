"""cluster.yaml against Ray's own cluster-config schema, and the KubeRay RayJob against our config loader."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import validate_config

from distributed_ssl.config import load_config

ROOT = Path(__file__).resolve().parents[1]
IMAGE_CHECKOUT = "/home/ray/distributed_ssl/"  # where jobs/kuberay/Dockerfile puts this repo


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_passes_rays_schema(cluster):
    validate_config(cluster)


def test_schema_check_is_real(cluster):
    broken = copy.deepcopy(cluster)
    broken["available_node_types"]["gpu_worker"]["max_workers"] = "four"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)
    broken = copy.deepcopy(cluster)
    broken["idle_timeout"] = 5  # a typo of idle_timeout_minutes
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


def test_cluster_has_head_cpu_and_gpu_groups_that_scale(cluster):
    types = cluster["available_node_types"]
    assert cluster["head_node_type"] in types
    workers = {k: v for k, v in types.items() if k != cluster["head_node_type"]}
    gpu = [k for k, v in workers.items() if v["node_config"]["InstanceType"].startswith(("g", "p"))]
    cpu = [k for k, v in workers.items() if k not in gpu]
    assert gpu and cpu
    for spec in workers.values():
        assert spec["min_workers"] == 0 < spec["max_workers"]
    assert cluster["idle_timeout_minutes"] > 0
    assert sum(v["max_workers"] for v in workers.values()) <= cluster["max_workers"]


def test_nodes_install_this_package(cluster):
    cpu_setup = " ".join(cluster["setup_commands"])
    assert "pip install" in cpu_setup and "distributed_ssl" in cpu_setup and "whl/cpu" in cpu_setup
    gpu_setup = " ".join(cluster["available_node_types"]["gpu_worker"]["worker_setup_commands"])
    assert "distributed_ssl" in gpu_setup and "whl/cu" in gpu_setup
    assert cluster["file_mounts"]["~/distributed_ssl"] == "."
    # Anchored at the checkout root: an unanchored `data` would also drop the distributed_ssl/data package.
    assert {"/.venv", "/data", "/runs"} <= set(cluster["rsync_exclude"])
    assert not {"data", "runs", ".venv"} & set(cluster["rsync_exclude"])


def test_every_node_image_installs_the_extras_the_recipes_use(cluster):
    """audio (soundfile), lidar (laspy) and tune (optuna): the same set as `make demo` installs."""
    extras = "distributed_ssl[audio,lidar,tune]"
    assert extras in " ".join(cluster["setup_commands"])
    assert extras in " ".join(cluster["available_node_types"]["gpu_worker"]["worker_setup_commands"])
    assert extras in (ROOT / "jobs" / "kuberay" / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert all(extra in makefile for extra in ("audio", "lidar", "tune"))


def test_dashboard_stays_on_loopback(cluster):
    start = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "0.0.0.0" not in start


def test_rayjob_runs_dssl_train_with_a_config_that_loads():
    job = yaml.safe_load((ROOT / "jobs" / "kuberay" / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["dssl", "train"]
    config = Path(argv[2].replace(IMAGE_CHECKOUT, str(ROOT) + "/"))
    assert config.is_file(), f"the entrypoint's config {argv[2]} is not in this repo"
    cfg = load_config(config, argv[3:])  # overrides are valid keys and values
    assert cfg.scaling.use_gpu
    spec = job["spec"]["rayClusterSpec"]
    assert spec["enableInTreeAutoscaling"] is True
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    gpu_limits = groups["gpu-train"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(gpu_limits["nvidia.com/gpu"]) >= 1
    assert all(g["minReplicas"] == 0 < g["maxReplicas"] for g in groups.values())
    assert job["spec"]["shutdownAfterJobFinishes"] is True

"""Autoscaling shown, not claimed: Ray's own autoscaler, with its fake multi-node provider, adds worker nodes
for a 2-trial `dssl tune` sweep pointed at the cluster exactly as on a laptop (the head has no CPUs, so each trial
needs a node it adds) and removes them once they idle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import validate_config

from tests.autoscale_probe import read_result
from tests.local_ray_head import start_head, stop_head

ROOT = Path(__file__).resolve().parents[1]
FAKE_CONFIG = ROOT / "jobs" / "autoscaling" / "fake_multinode.yaml"
PORT = 6391


def test_fake_cluster_config_is_valid_and_worker_only_resource():
    config = yaml.safe_load(FAKE_CONFIG.read_text())
    validate_config(config)
    types = config["available_node_types"]
    assert "dssl_worker" not in types["ray.head.default"]["resources"]
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert workers and all(t["min_workers"] == 0 and t["max_workers"] >= 2 for t in workers)
    assert all(t["resources"].get("dssl_worker", 0) >= 1 for t in workers)


@pytest.mark.slow
def test_autoscaler_adds_nodes_for_a_sweep_and_removes_them_when_idle(tmp_path, digits, mlflow_server):
    config = yaml.safe_load(FAKE_CONFIG.read_text())
    config["provider"]["gcs_address"] = f"127.0.0.1:{PORT}"
    path = tmp_path / "autoscaling.yaml"
    config["available_node_types"]["ray.head.default"]["resources"] = {"CPU": 0}
    path.write_text(yaml.safe_dump(config))
    # No CPUs on the head: every task and every trial can only run on nodes the autoscaler adds.
    head = start_head(PORT, num_cpus=0, log_dir=tmp_path, autoscaling_config=path,
                      env={"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"})
    # The head runs with token auth on (start_head); a driver given an explicit address must opt in to send the token.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "DSSL_TEST_TRACKING_URI": mlflow_server.uri}
    env.pop("RAY_ADDRESS", None)
    try:
        proc = subprocess.run([sys.executable, "-m", "tests.autoscale_probe", head.gcs_address, "120",
                               str(tmp_path / "sweep"), str(digits)],
                              cwd=ROOT, capture_output=True, text=True, timeout=560, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:] + head.log_tail()
        result = read_result(proc.stdout)
    finally:
        stop_head(head)
    timeline, marks = result["timeline"], result["marks"]
    counts = [n for _, n in timeline]
    during_sweep = [n for t, n in timeline if t <= marks["sweep_done"]]
    print(f"\nautoscaler: nodes over time {_changes(timeline)}; events (s): {marks}")
    assert counts[0] == 1, "the cluster must start with the head alone"
    sweep = result["sweep"]
    assert sweep["trials"] == 2, sweep
    assert max(during_sweep) >= 2, "no worker node was added for the sweep's trials"
    assert sweep["scaled_down"] and counts[-1] == 1, \
        f"idle nodes were not removed after the sweep: {timeline[-5:]}; held by {sweep.get('actors_off_head')}"


def _changes(timeline: list[list[float]]) -> str:
    """[(0, 1), (0.5, 1), (9, 2), (20, 1)] → '1 at 0 s -> 2 at 9 s -> 1 at 20 s'."""
    out = [timeline[0]]
    for t, n in timeline[1:]:
        if n != out[-1][1]:
            out.append((t, n))
    return " -> ".join(f"{n} at {t:.0f} s" for t, n in out)


def test_ray_data_helper_actors_can_be_placed_on_the_driver_node(ray_cluster, caplog):
    """The factories named in RAY_DATA_HELPER_FACTORIES exist in this Ray: a rename would leave the actors to
    land on worker nodes and keep them from scaling down."""
    from distributed_ssl.launch.ray_runtime import keep_ray_data_helpers_on_this_node

    with caplog.at_level("WARNING", logger="distributed_ssl.ray"):
        keep_ray_data_helpers_on_this_node()
    assert not [r.getMessage() for r in caplog.records if r.name == "distributed_ssl.ray"]

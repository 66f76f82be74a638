"""What dssl sets for Ray Train's controller reaches it: Ray passes the variables it reads on from the process that
builds the TorchTrainer (benchmarks/run_overhead.py measures what they save)."""

import pytest
from ray.train.v2._internal.constants import get_env_vars_to_propagate

from distributed_ssl.config import ConfigError, load_config
from distributed_ssl.launch.ray_runtime import (
    PREEMPTION_WATCHER_ENV_VAR,
    TRAIN_POLL_ENV_VAR,
    set_train_controller_env,
)


def test_the_configured_interval_is_what_ray_hands_the_controller(monkeypatch):
    monkeypatch.setenv(TRAIN_POLL_ENV_VAR, "2.0")  # restored after the test, whatever it was
    set_train_controller_env(load_config(None, {"run.poll_interval_s": 0.25}))
    assert get_env_vars_to_propagate()[TRAIN_POLL_ENV_VAR] == "0.25"
    set_train_controller_env(load_config(None))
    assert float(get_env_vars_to_propagate()[TRAIN_POLL_ENV_VAR]) == 0.5


def test_a_local_run_starts_no_preemption_watcher_and_a_cluster_run_does(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv(PREEMPTION_WATCHER_ENV_VAR, "1")
    set_train_controller_env(load_config(None))
    assert get_env_vars_to_propagate()[PREEMPTION_WATCHER_ENV_VAR] == "0"
    set_train_controller_env(load_config(None, {"run.ray_address": "127.0.0.1:6379"}))
    assert get_env_vars_to_propagate()[PREEMPTION_WATCHER_ENV_VAR] == "1"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # a cluster named by the environment, as Ray allows
    set_train_controller_env(load_config(None))
    assert get_env_vars_to_propagate()[PREEMPTION_WATCHER_ENV_VAR] == "1"


@pytest.mark.parametrize("value", [0, -1, 61])
def test_an_interval_out_of_range_fails_at_load_naming_the_key(value):
    with pytest.raises(ConfigError, match="run.poll_interval_s"):
        load_config(None, {"run.poll_interval_s": value})

"""`run.poll_interval_s` reaches Ray Train's controller: Ray passes the variable it reads on from the process
that builds the TorchTrainer (benchmarks/run_overhead.py measures what it saves)."""

import pytest
from ray.train.v2._internal.constants import get_env_vars_to_propagate

from distributed_ssl.config import ConfigError, load_config
from distributed_ssl.launch.ray_runtime import TRAIN_POLL_ENV_VAR, set_train_poll_interval


def test_the_configured_interval_is_what_ray_hands_the_controller(monkeypatch):
    monkeypatch.setenv(TRAIN_POLL_ENV_VAR, "2.0")  # restored after the test, whatever it was
    set_train_poll_interval(load_config(None, {"run.poll_interval_s": 0.25}))
    assert get_env_vars_to_propagate()[TRAIN_POLL_ENV_VAR] == "0.25"
    set_train_poll_interval(load_config(None))
    assert float(get_env_vars_to_propagate()[TRAIN_POLL_ENV_VAR]) == 0.5


@pytest.mark.parametrize("value", [0, -1, 61])
def test_an_interval_out_of_range_fails_at_load_naming_the_key(value):
    with pytest.raises(ConfigError, match="run.poll_interval_s"):
        load_config(None, {"run.poll_interval_s": value})

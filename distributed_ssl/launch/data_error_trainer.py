"""A TorchTrainer whose failure policy restarts the worker group after a crash, never after a data error
(the policy: `launch/data_error_failure_policy.py`)."""

from __future__ import annotations

from typing import Any

from ray.train.torch import TorchTrainer

from distributed_ssl.launch.data_error_failure_policy import DataErrorFailurePolicy


class DataErrorAwareTorchTrainer(TorchTrainer):
    """TorchTrainer with `DataErrorFailurePolicy` in place of Ray's default failure policy."""

    def __init__(self, *args: Any, run_dir_uri: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._run_dir_uri = run_dir_uri

    def _initialize_and_run_controller(self, **controller_init_kwargs: Any) -> Any:
        if "failure_policy" not in controller_init_kwargs:  # guards the one Ray internal this class relies on
            raise RuntimeError("this Ray version's TrainController takes no failure_policy; "
                               "distributed_ssl needs one that does (ray>=2.49)")
        controller_init_kwargs["failure_policy"] = DataErrorFailurePolicy(self.run_config.failure_config,
                                                                          self._run_dir_uri)
        return super()._initialize_and_run_controller(**controller_init_kwargs)

"""Ray Train's failure policy, except that a deterministic data error fails the run at once instead of a retry.

Ray Train's default policy retries every worker-group error up to `FailureConfig.max_failures`. A retry of a bad
record, an exceeded `data.max_bad_fraction` or a schema mismatch reads the same bytes and fails the same way, after
a restart and a restore each time. The policy raises at once when the failing worker recorded such an error in the
run dir (`engine.data_errors.record_fatal`) or when a worker's exception is one; everything else (a killed worker, a
lost node, an out-of-memory) is left to the default policy and its retry budget.

Ray Train's controller unpickles this object, so the module keeps to Ray and the run dir: the controller of every
run does not import the modalities (decoders, augmentations) with it.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.train.v2._internal.execution.failure_handling import DefaultFailurePolicy
from ray.train.v2._internal.execution.failure_handling.failure_policy import FailureDecision
from ray.train.v2.api.exceptions import TrainingFailedError, WorkerGroupError

from distributed_ssl.engine.data_errors import deterministic_cause, read_fatal
from distributed_ssl.util.run_dir import RunDir

log = logging.getLogger(__name__)


class DataErrorFailurePolicy(DefaultFailurePolicy):
    """The default policy, except that a deterministic data error is raised without a retry."""

    def __init__(self, failure_config: Any, run_dir_uri: str):
        super().__init__(failure_config)
        self.run_dir_uri = run_dir_uri

    def make_decision(self, training_failed_error: TrainingFailedError) -> FailureDecision:
        if isinstance(training_failed_error, WorkerGroupError) and self._is_data_error(training_failed_error):
            log.info("[FailurePolicy] RAISE: a deterministic data error is not retried")
            return FailureDecision.RAISE
        return super().make_decision(training_failed_error)

    def _is_data_error(self, error: WorkerGroupError) -> bool:
        if any(deterministic_cause(cause) is not None for cause in error.worker_failures.values()):
            return True
        try:
            return read_fatal(RunDir(self.run_dir_uri)) is not None
        except Exception as exc:  # noqa: BLE001 - the run dir unreadable here: a crash for all the policy can tell
            log.warning("could not read %s for a recorded data error: %s", self.run_dir_uri, exc)
            return False

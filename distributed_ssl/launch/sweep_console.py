"""A sweep's console: one line when a trial starts, one per trial epoch with its objective, one when it ends.

Trials run with no progress bar of their own (many share the console), and Ray Tune's status table is left out
without `-v` (sweep.py sets Tune's verbosity): these lines say which trial is where, what the objective reads
and which trial leads, and they read the same on a terminal and in `ray job logs`.
"""

from __future__ import annotations

import logging
from typing import Any

from ray import tune

from distributed_ssl.engine.reports import is_epoch_end, is_final

log = logging.getLogger("distributed_ssl.sweep")


class SweepConsoleCallback(tune.Callback):
    """Ray Tune callback (on the sweep's driver) that logs each trial's start, epochs and end."""

    def __init__(self, metric: str, mode: str, swept: list[str]):
        self.metric, self.mode, self.swept = metric, mode, swept
        self.best: tuple[float, str] | None = None  # (objective, trial id)
        self.finished: set[str] = set()  # trials whose run reported its final record
        self.ended = 0

    def _params(self, trial: Any) -> str:
        config = trial.config or {}
        return ", ".join(f"{key}={_short(config[key])}" for key in self.swept if key in config)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        log.info("trial %s started (%d so far): %s", trial.trial_id, len(trials), self._params(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if is_final(result):
            self.finished.add(trial.trial_id)
        if not is_epoch_end(result) or result.get(self.metric) is None:
            return
        value = float(result[self.metric])
        better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
        if better:
            self.best = (value, trial.trial_id)
        lead = " (best so far)" if better else f" (best {self.best[0]:.3f}, trial {self.best[1]})"
        log.info("trial %s epoch %s: %s %.3f%s", trial.trial_id, result.get("epoch"), self.metric, value, lead)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended += 1
        how = "finished" if trial.trial_id in self.finished else "stopped early by the scheduler"
        log.info("trial %s %s (%d trials ended)", trial.trial_id, how, self.ended)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended += 1
        log.warning("trial %s failed (%d trials ended); its error is in %s", trial.trial_id, self.ended,
                    getattr(trial, "path", None) or "the sweep's tune/ folder")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

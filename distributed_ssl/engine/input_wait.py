"""How long a worker waits for its next batch, against how long it computes: is the accelerator fed?

Measured where the answer lives: `iter_torch_batches` → batch in hand is waiting; batch in hand → step done is
computing. Per logging window and for the whole run, as `input_wait_fraction`; also the time the probes take
(`eval_seconds`) and the gap between one epoch's last batch and the next epoch's first (`epoch_gap_seconds`,
probes excluded), which is what a pipeline's per-epoch start-up costs.
"""

from __future__ import annotations

import time

WARN_ABOVE = 0.10
ADVICE = ("more data.preprocess_cpus, a larger data.preprocess_batch_size, or fewer workers per node: the "
          "training step is waiting for Ray Data")


class InputWaitMeter:
    def __init__(self) -> None:
        self.window_wait = self.window_compute = 0.0
        self.total_wait = self.total_compute = 0.0
        self.eval_seconds = 0.0
        self.epoch_gaps: list[float] = []
        self._mark = time.perf_counter()
        self._epoch_ended: float | None = None
        self._eval_in_gap = 0.0
        self._first_in_epoch = True

    def waiting(self) -> None:
        """From now on the worker waits for a batch (call before the loop and after each step's work)."""
        self._mark = time.perf_counter()

    def arrived(self) -> None:
        """A batch is in hand."""
        now = time.perf_counter()
        wait = now - self._mark
        self.window_wait += wait
        self.total_wait += wait
        if self._first_in_epoch and self._epoch_ended is not None:
            self.epoch_gaps.append(max(0.0, now - self._epoch_ended - self._eval_in_gap))
        self._first_in_epoch = False
        self._mark = now

    def computed(self) -> None:
        """The step on the batch in hand is done."""
        now = time.perf_counter()
        self.window_compute += now - self._mark
        self.total_compute += now - self._mark
        self._mark = now

    def window_fraction(self) -> float:
        """The wait share since the last call."""
        fraction = self.window_wait / max(self.window_wait + self.window_compute, 1e-9)
        self.window_wait = self.window_compute = 0.0
        return fraction

    def epoch_ended(self) -> None:
        self._epoch_ended, self._eval_in_gap, self._first_in_epoch = time.perf_counter(), 0.0, True

    def evaluated(self, seconds: float) -> None:
        self.eval_seconds += seconds
        self._eval_in_gap += seconds

    def run_fraction(self) -> float:
        return self.total_wait / max(self.total_wait + self.total_compute, 1e-9)

    def mean_epoch_gap(self) -> float:
        return sum(self.epoch_gaps) / len(self.epoch_gaps) if self.epoch_gaps else 0.0

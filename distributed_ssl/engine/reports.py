"""What a training worker reports to Ray Train, one dataclass per kind, and how the driver reads it back.

Ray Train carries a flat dict of metrics (and Ray Tune adds its own keys to it: `done`, `training_iteration`,
timestamps), so each record turns into that dict (`to_metrics`) and is parsed back from it (`from_metrics`,
`parse_report`), ignoring keys it does not own. The metric names are the ones sweeps (`tune.metric`), ASHA, PBT
and summary.json read: `global_step`, `epoch`, `loss`, `knn_top1`, `linear_top1`, ...; the kind of a record is
told by two flags, `epoch_end` (an epoch's last report, which carries the objective) and `finished` (the run's
last).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

# the probe and collapse metrics a final report may carry (see evaluation/probe_suite.py, engine/probe_logging.py)
PROBE_KEYS = ("linear_top1", "embedding_std", "effective_rank", "effective_rank_fraction", "collapsed",
              "collapse_warning")


def _pick(cls: type, metrics: dict[str, Any]) -> dict[str, Any]:
    """The values of `metrics` for the dataclass fields of `cls` (absent ones left to their defaults)."""
    return {f.name: metrics[f.name] for f in fields(cls) if f.name in metrics}


@dataclass(frozen=True)
class StepReport:
    """A mid-epoch report, sent with a checkpoint every `train.checkpoint_every` optimizer steps."""

    global_step: int
    epoch: int
    loss: float

    def to_metrics(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> StepReport:
        return cls(**_pick(cls, metrics))


@dataclass(frozen=True)
class EpochEndReport:
    """The end of an epoch that is not the run's last: the objective (`knn_top1`) when the epoch was evaluated."""

    global_step: int
    epoch: int  # epochs completed
    loss: float
    knn_top1: float | None = None
    linear_top1: float | None = None
    FLAGS: ClassVar[dict[str, bool]] = {"epoch_end": True}

    def to_metrics(self) -> dict[str, Any]:
        return {**asdict(self), **self.FLAGS}

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> EpochEndReport:
        return cls(**_pick(cls, metrics))


@dataclass(frozen=True)
class FinalReport:
    """The run's last report (also an epoch end), with the encoder's final checkpoint; summary.json is made of it.

    `probe` holds the last eval epoch's other metrics (`PROBE_KEYS`), flattened into the report; it is empty without an
    eval set, and lacks `linear_top1` for a run resumed from a checkpoint older than the linear probe.
    """

    global_step: int
    epoch: int
    loss: float
    samples_per_s: float
    input_wait_fraction: float | None = None
    eval_seconds: float | None = None
    epoch_gap_seconds: float | None = None
    knn_top1: float | None = None
    knn_top1_random_init: float | None = None
    knn_top1_raw_features: float | None = None
    linear_top1_random_init: float | None = None
    probe: dict[str, Any] = field(default_factory=dict)
    FLAGS: ClassVar[dict[str, bool]] = {"finished": True, "epoch_end": True}

    def to_metrics(self) -> dict[str, Any]:
        flat = {k: v for k, v in asdict(self).items() if k != "probe"}
        return {**self.probe, **flat, **self.FLAGS}

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> FinalReport:
        values = {k: v for k, v in _pick(cls, metrics).items() if k != "probe"}
        probe = {k: metrics[k] for k in PROBE_KEYS if k in metrics}
        return cls(**{"global_step": None, "epoch": None, "loss": None, "samples_per_s": None, **values},
                   probe=probe)


Report = StepReport | EpochEndReport | FinalReport


def parse_report(metrics: dict[str, Any] | None) -> Report | None:
    """The record behind a metrics dict that Ray Train or Tune hands back; None for an empty or foreign one."""
    metrics = metrics or {}
    if metrics.get("finished"):
        return FinalReport.from_metrics(metrics)
    if metrics.get("epoch_end"):
        return EpochEndReport.from_metrics(metrics)
    if "global_step" in metrics:
        return StepReport.from_metrics(metrics)
    return None


def is_epoch_end(metrics: dict[str, Any] | None) -> bool:
    """An epoch's last report (the run's last included): the only kind that carries the per-epoch objective."""
    return isinstance(parse_report(metrics), (EpochEndReport, FinalReport))


def is_final(metrics: dict[str, Any] | None) -> bool:
    return isinstance(parse_report(metrics), FinalReport)

"""Rank 0's record of each eval epoch: probe metrics to MLflow, one log line, and a loud collapse warning.

A collapsed representation still trains with a falling loss (BYOL, DINO and JEPA can all reach it), so the
warning goes to the log, to an MLflow tag (`collapse_warning`, visible in the run list) and, through the final
report, to summary.json.
"""

from __future__ import annotations

import logging

from distributed_ssl.engine.reports import FinalReport
from distributed_ssl.evaluation.probe_suite import ProbeResult
from distributed_ssl.tracking.mlflow_tracking import RunLogger

log = logging.getLogger("distributed_ssl.train")


def collapse_warning(result: ProbeResult, epoch: int) -> str | None:
    """The warning text for a collapsed eval epoch, else None."""
    return f"epoch {epoch}: representation collapse: {result.collapse.reason}" if result.collapse.collapsed else None


def log_probe(logger: RunLogger | None, result: ProbeResult, baseline: ProbeResult | None, epoch: int,
              step: int) -> None:
    """Metrics of one eval epoch (at the current optimizer step), compared with the random-init baseline."""
    if logger is None:
        return
    logger.metrics({**result.metrics(), "epoch_end": epoch}, step)
    c = result.collapse
    log.info("epoch %d kNN top-1 %.4f, linear top-1 %.4f (random init %s); embedding std %.4g, effective rank "
             "%.1f of %d", epoch, result.knn_top1, result.linear_top1,
             f"{baseline.knn_top1:.4f} / {baseline.linear_top1:.4f}" if baseline else "-", c.embedding_std,
             c.effective_rank, c.dim)
    warning = collapse_warning(result, epoch)
    if warning:
        log.warning("%s. The encoder maps the eval set to (nearly) one point or a few directions; lower the "
                    "learning rate, raise the EMA momentum or check the method's settings.", warning)
        logger.tags({"collapse_warning": warning})


def log_final(logger: RunLogger | None, final: FinalReport) -> None:
    """The run-level metrics at the last step: throughput and timing, and the final probes against the baselines."""
    if logger is None:
        return
    run_metrics = {"train_samples_per_s": final.samples_per_s, "run_input_wait_fraction": final.input_wait_fraction,
                   "run_eval_seconds": final.eval_seconds, "run_epoch_gap_seconds": final.epoch_gap_seconds}
    if final.knn_top1 is None:
        logger.metrics(run_metrics, final.global_step)
        return
    linear = final.probe.get("linear_top1")  # absent: a run resumed from before the linear probe
    extra = {"linear_top1_final": linear, "linear_top1_random_init": final.linear_top1_random_init} \
        if linear is not None and final.linear_top1_random_init is not None else {}
    raw = {"knn_top1_raw_features": final.knn_top1_raw_features} if final.knn_top1_raw_features is not None else {}
    logger.metrics({"knn_top1_final": final.knn_top1, "knn_top1_random_init": final.knn_top1_random_init,
                    **raw, **run_metrics, **extra}, final.global_step)

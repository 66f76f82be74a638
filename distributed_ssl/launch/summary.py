"""The end-of-run results: `summary.json` and the table printed to the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SUMMARY_KEYS = ["method", "modality", "encoder", "steps", "epochs", "knn_top1", "knn_top1_random_init",
                "knn_top1_raw_features", "linear_top1", "linear_top1_random_init", "embedding_std",
                "effective_rank", "collapsed", "samples_per_s", "input_wait_fraction", "eval_seconds",
                "epoch_gap_seconds", "wall_time_s", "num_workers", "zero_stage", "precision", "mlflow_run_id"]


def collapse_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The collapse-monitoring fields of the final report (see evaluation/collapse.py), None without an eval set."""
    collapsed = metrics.get("collapsed")
    return {"embedding_std": metrics.get("embedding_std"), "effective_rank": metrics.get("effective_rank"),
            "effective_rank_fraction": metrics.get("effective_rank_fraction"),
            "collapsed": None if collapsed is None else bool(collapsed),
            "collapse_warning": metrics.get("collapse_warning")}


def write_summary(summary: dict[str, Any], path: str | Path) -> None:
    """Write summary.json (secrets masked) to a local path or a URI."""
    from distributed_ssl.util import storage
    from distributed_ssl.util.redaction import redact

    fs, where = storage.resolve(str(path))
    storage.write_text(fs, where, json.dumps(redact(summary), indent=2))


def format_table(summary: dict[str, Any]) -> str:
    rows = []
    for key in SUMMARY_KEYS + [k for k in summary if k not in SUMMARY_KEYS]:
        if key not in summary:
            continue
        value = summary[key]
        if isinstance(value, float):
            value = f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
        rows.append((key, "-" if value is None else str(value)))
    width = max(len(k) for k, _ in rows)
    vwidth = max(len(v) for _, v in rows)
    line = "+" + "-" * (width + 2) + "+" + "-" * (vwidth + 2) + "+"
    body = [f"| {k.ljust(width)} | {v.ljust(vwidth)} |" for k, v in rows]
    return "\n".join([line, *body, line])


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A table with one line per row (e.g. one per sweep trial)."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])

    def cell(v: Any) -> str:
        return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    widths = {c: max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in columns}
    line = "+" + "+".join("-" * (widths[c] + 2) for c in columns) + "+"
    head = "| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |"
    body = ["| " + " | ".join(cell(r.get(c)).ljust(widths[c]) for c in columns) + " |" for r in rows]
    return "\n".join([line, head, line, *body, line])

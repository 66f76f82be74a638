"""The end-of-run results: `summary.json` and the table printed to the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SUMMARY_KEYS = ["method", "modality", "encoder", "steps", "epochs", "knn_top1", "knn_top1_random_init",
                "samples_per_s", "wall_time_s", "num_workers", "zero_stage", "precision", "mlflow_run_id"]


def write_summary(summary: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(path)


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

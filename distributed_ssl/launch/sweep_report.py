"""What a finished sweep leaves behind: best_config.yaml, trials.csv, plots, and tags on the MLflow runs."""

from __future__ import annotations

import csv
import math
import tempfile
from pathlib import Path
from typing import Any

from distributed_ssl.config.loader import resolve_config, save_config
from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.engine.reports import is_final
from distributed_ssl.tracking.mlflow_tracking import RunLogger
from distributed_ssl.util import storage
from distributed_ssl.util.redaction import redact_text
from distributed_ssl.util.run_dir import RunDir


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _child_runs(parent: RunLogger) -> dict[str, Any]:
    """trial_id → MLflow child run, found through the parent-run tag."""
    client = parent.client
    exp_id = client.get_run(parent.run_id).info.experiment_id
    runs = client.search_runs([exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.run_id}'",
                              max_results=10000)
    return {r.data.tags.get("trial_id"): r for r in runs}


def collect_trials(cfg: SSLConfig, results) -> list[dict[str, Any]]:
    metric = cfg.tune.metric
    rows = []
    for result in results:
        history = result.metrics_dataframe
        curve = []
        if history is not None and metric in history and "epoch" in history:
            curve = [(int(e), float(v)) for e, v in zip(history["epoch"], history[metric], strict=True)
                     if _finite(v)]
        last = result.metrics or {}
        epochs = int(last.get("epoch", curve[-1][0] if curve else 0) or 0)
        if result.error is not None:
            reason = "error"
        elif epochs < cfg.train.epochs and not is_final(last):  # Tune itself fills "done"
            reason = "stopped_early"
        else:
            reason = "completed"
        values = [v for _, v in curve]
        best = (max(values) if cfg.tune.mode == "max" else min(values)) if values else None
        rows.append({"trial_id": last.get("trial_id", Path(result.path).name),
                     **{k: result.config.get(k) for k in cfg.tune.space},
                     f"{metric}_last": values[-1] if values else None, f"{metric}_best": best,
                     "epochs": epochs, "stop_reason": reason,
                     "error": redact_text(str(result.error).splitlines()[0]) if result.error else "",
                     "_curve": curve})
    return rows


def _plots(cfg: SSLConfig, rows: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, keys = cfg.tune.metric, list(cfg.tune.space)
    colours = {"completed": "tab:green", "stopped_early": "tab:orange", "error": "tab:red"}
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for row in rows:
            value, y = row[key], row[f"{metric}_best"]
            if y is not None and isinstance(value, (int, float)):
                ax.scatter(value, y, c=colours[row["stop_reason"]], label=row["stop_reason"])
            elif y is not None:
                ax.scatter(str(value), y, c=colours[row["stop_reason"]], label=row["stop_reason"])
        ax.set_xlabel(key)
        ax.set_ylabel(f"best {metric}")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
    fig.tight_layout()
    scatter = out / "objective_vs_params.png"
    fig.savefig(scatter, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        if row["_curve"]:
            epochs, values = zip(*row["_curve"], strict=True)
            ax.plot(epochs, values, marker="o", color=colours[row["stop_reason"]], alpha=0.8,
                    label=f"{row['trial_id']} ({row['stop_reason']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title("learning curves of all trials")
    ax.legend(fontsize=6)
    fig.tight_layout()
    curves = out / "learning_curves.png"
    fig.savefig(curves, dpi=100)
    plt.close(fig)
    return [scatter, curves]


def write_sweep_report(cfg: SSLConfig, results, sweep_dir: RunDir, parent: RunLogger) -> dict[str, Any]:
    """trials.csv, plots and best_config.yaml into the sweep dir (any filesystem) and the parent MLflow run."""
    with tempfile.TemporaryDirectory(prefix="dssl-sweep-report-") as tmp:
        report = _write_report(cfg, results, Path(tmp), sweep_dir.uri, parent)
        for path in Path(tmp).iterdir():
            sweep_dir.upload(path, path.name)
            parent.artifact(path)
    if "best_config" in report:
        report["best_config"] = sweep_dir.child_uri("best_config.yaml")
    return report


def _write_report(cfg: SSLConfig, results, out: Path, sweep_uri: str, parent: RunLogger) -> dict[str, Any]:
    metric = cfg.tune.metric
    rows = collect_trials(cfg, results)
    children = _child_runs(parent)
    for row in rows:
        child = children.get(row["trial_id"])
        row["mlflow_run_id"] = child.info.run_id if child else ""
        if child:
            parent.client.set_tag(child.info.run_id, "stop_reason", row["stop_reason"])
            if child.info.status == "RUNNING":
                parent.client.set_terminated(child.info.run_id,
                                             "FAILED" if row["stop_reason"] == "error" else "KILLED")

    columns = ["trial_id", *cfg.tune.space, f"{metric}_last", f"{metric}_best", "epochs", "stop_reason",
               "mlflow_run_id", "error"]
    csv_path = out / "trials.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    _plots(cfg, rows, out)

    scored = [r for r in rows if r[f"{metric}_best"] is not None]
    report: dict[str, Any] = {"sweep_dir": sweep_uri, "trials": len(rows), "mlflow_run_id": parent.run_id,
                              "stopped_early": sum(r["stop_reason"] == "stopped_early" for r in rows),
                              "errors": sum(r["stop_reason"] == "error" for r in rows)}
    if scored:
        pick = max if cfg.tune.mode == "max" else min
        best = pick(scored, key=lambda r: r[f"{metric}_best"])
        overrides = {k: best[k] for k in cfg.tune.space}
        best_cfg = resolve_config(cfg.model_dump(mode="json"),
                                  {**overrides, "run.dir": storage.join(sweep_uri, "best"), "tune.space": {}},
                                  source="best trial")
        best_path = out / "best_config.yaml"
        save_config(best_cfg, best_path)
        parent.metrics({f"best_{metric}": best[f"{metric}_best"]}, step=0)
        parent.tags({"best_trial": best["trial_id"]})
        report.update(best_trial=best["trial_id"], best_value=best[f"{metric}_best"], best_overrides=overrides,
                      best_config=str(best_path))
    report["table"] = [{k: r[k] for k in columns if k != "error"} for r in rows]
    return report

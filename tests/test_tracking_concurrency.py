"""Eight processes log runs and metrics into one MLflow tracking server at once; no run and no metric is lost."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
from mlflow.tracking import MlflowClient

WRITERS, STEPS = 8, 20
EXPERIMENT = "concurrent-writers"


def _write_run(uri: str, writer: int, run_dir: str) -> str:
    """One writer: create the (shared) experiment and its run, log STEPS steps of 3 metrics, tags, finish."""
    from distributed_ssl.tracking.mlflow_tracking import RunLogger, create_run

    run_id = create_run(uri, EXPERIMENT, run_dir, f"writer-{writer}", {"writer": writer})
    logger = RunLogger(uri, run_id, buffer_dir=run_dir, retries=3, retry_wait_s=0.2, request_timeout_s=60)
    for step in range(STEPS):
        logger.metrics({"loss": writer + step / STEPS, "lr": 0.1, "samples_per_s": 100.0 + step}, step)
    logger.tags({"writer": str(writer)})
    logger.finish("FINISHED")
    return run_id


@pytest.mark.slow
@pytest.mark.reliability(failure="8 processes create runs in one experiment and log metrics into one tracking "
                                 "server at the same time (including the race to create the experiment)",
                         response="every run and every metric point arrives, nothing is left in a buffer")
def test_eight_concurrent_writers_lose_nothing(mlflow_server, tmp_path):
    ctx = multiprocessing.get_context("forkserver")  # fresh processes without Ray's threads, MLflow imported once
    ctx.set_forkserver_preload(["distributed_ssl.tracking.mlflow_tracking", "tests.test_tracking_concurrency"])
    with ProcessPoolExecutor(WRITERS, mp_context=ctx) as pool:
        futures = [pool.submit(_write_run, mlflow_server.uri, w, str(tmp_path / f"w{w}")) for w in range(WRITERS)]
        run_ids = [f.result(timeout=300) for f in futures]
    assert not list(tmp_path.glob("w*/mlflow_buffer.jsonl")), "a writer had to buffer records"
    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert sorted(r.info.run_id for r in runs) == sorted(run_ids) and len(set(run_ids)) == WRITERS
    for run in runs:
        writer = int(run.data.tags["writer"])
        assert run.info.status == "FINISHED" and run.data.params == {"writer": str(writer)}
        for key in ("loss", "lr", "samples_per_s"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(STEPS)), (writer, key)
        assert run.data.metrics["loss"] == pytest.approx(writer + (STEPS - 1) / STEPS)

"""The MLflow server goes away mid-run: logging returns quickly, nothing is lost and nothing is duplicated.

A real `mlflow server` (SQLite backend) is killed and restarted on the same port and store. Records logged while
it is down wait in RUN_DIR/mlflow_buffer/ (one file a record, artifacts copied in beside them) and are delivered by
the next successful call or by `dssl sync`.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from distributed_ssl.cli import main
from distributed_ssl.launch.run_state import RunState
from distributed_ssl.tracking.mlflow_tracking import RunLogger, create_run
from distributed_ssl.tracking.outage_buffer import BUFFER_DIR, OutageBuffer
from distributed_ssl.util.run_dir import RunDir
from tests.mlflow_server import free_port


def _steps(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _buffered_files(run_dir: Path) -> list[str]:
    """Every file left in RUN_DIR/mlflow_buffer/ (records and artifact copies); none once all is delivered."""
    folder = run_dir / BUFFER_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.slow
@pytest.mark.reliability(failure="the MLflow tracking server is down mid-run (killed, then restarted on the same "
                                 "store)",
                         response="logging calls return after short retries and training goes on; records wait in "
                                  "RUN_DIR/mlflow_buffer/ and reach MLflow in order with the next call or "
                                  "`dssl sync RUN_DIR`; none lost, none duplicated")
def test_server_outage_loses_and_duplicates_nothing(mlflow_server, tmp_path, capsys):
    server = mlflow_server
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_id = create_run(server.uri, "outage", str(run_dir), "outage", {"optim.lr": 0.1})
    RunState(run_id, server.uri, "outage").save(RunDir(run_dir))
    logger = RunLogger(server.uri, run_id, buffer_dir=run_dir, retries=1, retry_wait_s=0.05, request_timeout_s=30)
    buffer = OutageBuffer(run_dir)
    logger.metrics({"loss": 1.0}, step=1)

    server.stop()
    started = time.monotonic()
    logger.metrics({"loss": 0.9}, step=2)
    logger.tags({"phase": "outage"})
    logger.metrics({"loss": 0.8, "lr": 0.05}, step=3)
    assert time.monotonic() - started < 5, "logging blocked training during the outage"
    assert buffer.pending() == 3 and len(_buffered_files(run_dir)) == 3

    server.start()
    logger.metrics({"loss": 0.7}, step=4)  # delivers the backlog first, then itself
    assert buffer.pending() == 0 and _buffered_files(run_dir) == []
    client = MlflowClient(server.uri)
    assert _steps(client, run_id, "loss") == [(1, 1.0), (2, 0.9), (3, 0.8), (4, 0.7)]
    assert client.get_run(run_id).data.tags["phase"] == "outage"

    # A record whose delivery was in doubt (sent, but the answer lost) is replayed without a duplicate.
    delivered = client.get_metric_history(run_id, "lr")[0]
    buffer.append({"metrics": [["lr", delivered.value, delivered.timestamp, delivered.step]]})
    assert logger.flush() == 1
    assert len(client.get_metric_history(run_id, "lr")) == 1

    # A worker cut off from the server (a dead port) keeps its records in the same run dir; `dssl sync` delivers.
    cut_off = RunLogger(f"http://127.0.0.1:{free_port()}", run_id, buffer_dir=run_dir, retries=0,
                        request_timeout_s=2)
    cut_off.metrics({"loss": 0.6}, step=5)
    cut_off.finish("FINISHED")
    assert buffer.pending() == 2
    assert main(["sync", str(run_dir)]) == 0
    assert "synced 2 buffered records" in capsys.readouterr().out
    assert _steps(client, run_id, "loss") == [(1, 1.0), (2, 0.9), (3, 0.8), (4, 0.7), (5, 0.6)]
    assert client.get_run(run_id).info.status == "FINISHED" and buffer.pending() == 0
    assert _buffered_files(run_dir) == []
    assert client.get_run(run_id).data.params == {"optim.lr": "0.1"}


def test_permanent_errors_are_raised_not_buffered(mlflow_server, tmp_path):
    """A request MLflow rejects (an unknown run) would fail forever: it is raised, and nothing is buffered."""
    logger = RunLogger(mlflow_server.uri, "0" * 32, buffer_dir=tmp_path, retries=3, retry_wait_s=5.0)
    started = time.monotonic()
    with pytest.raises(Exception, match="0" * 32):
        logger.metrics({"loss": 1.0}, step=1)
    assert time.monotonic() - started < 5 and OutageBuffer(tmp_path).pending() == 0


@pytest.mark.slow
@pytest.mark.reliability(failure="artifacts logged while the MLflow server is down, from temporary files deleted "
                                 "right after (as the views preview is); then one buffered artifact copy deleted "
                                 "by hand",
                         response="`dssl sync RUN_DIR` delivers each artifact byte-identical and each metric once; "
                                  "the record whose copy is gone is dropped with a warning and the records after "
                                  "it are still delivered")
def test_sync_delivers_buffered_artifacts_once_and_drops_a_lost_copy(mlflow_server, tmp_path, capsys, caplog):
    server = mlflow_server
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_id = create_run(server.uri, "outage-artifacts", str(run_dir), "outage-artifacts", {})
    RunState(run_id, server.uri, "outage-artifacts").save(RunDir(run_dir))
    logger = RunLogger(server.uri, run_id, buffer_dir=run_dir, retries=0, request_timeout_s=30)
    buffer = OutageBuffer(run_dir)
    payload = json.dumps({"knn_top1": 0.91, "note": "x" * 5000}).encode()

    server.stop()
    try:
        logger.metrics({"loss": 0.9}, step=1)
        with tempfile.TemporaryDirectory() as tmp:
            kept, lost = Path(tmp) / "summary.json", Path(tmp) / "views.png"
            kept.write_bytes(payload)
            lost.write_bytes(b"\x89PNG not really")
            logger.artifact(kept)
            logger.artifact(lost, subdir="previews")
        assert not kept.exists()  # the originals are gone: only the buffer's copies remain
        logger.metrics({"loss": 0.8, "lr": 0.05}, step=2)
        logger.tags({"phase": "outage"})
        assert buffer.pending() == 5  # an artifact named *.json is not counted as a record
        records = [json.loads((run_dir / BUFFER_DIR / n).read_text()) for n in _buffered_files(run_dir)
                   if n.endswith(".json")]
        copies = {r["artifact_name"]: r["artifact_copy"] for r in records if "artifact_copy" in r}
        assert set(copies) == {"summary.json", "views.png"}
        (run_dir / copies["views.png"]).unlink()  # deleted by hand: it can never be delivered
    finally:
        server.start()

    with caplog.at_level(logging.WARNING, logger="distributed_ssl.tracking"):
        assert main(["sync", str(run_dir)]) == 0
    assert "synced 4 buffered records" in capsys.readouterr().out
    assert any("dropped buffered artifact views.png" in r.getMessage() for r in caplog.records)
    assert buffer.pending() == 0 and _buffered_files(run_dir) == []

    client = MlflowClient(server.uri)
    assert [a.path for a in client.list_artifacts(run_id)] == ["summary.json"]  # nothing under previews/
    downloaded = client.download_artifacts(run_id, "summary.json", str(tmp_path / "download"))
    assert Path(downloaded).read_bytes() == payload
    assert _steps(client, run_id, "loss") == [(1, 0.9), (2, 0.8)]  # the records after the lost copy arrived
    assert _steps(client, run_id, "lr") == [(2, 0.05)]
    assert client.get_run(run_id).data.tags["phase"] == "outage"

    assert main(["sync", str(run_dir)]) == 0  # nothing left: a second sync sends nothing again
    assert "synced 0 buffered records" in capsys.readouterr().out
    assert _steps(client, run_id, "loss") == [(1, 0.9), (2, 0.8)]

"""Shared fixtures: one local Ray for the session, the built-in digits shards, small configs."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray with more logical CPUs than cores, so train workers and Ray Data tasks both get slots."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=6, object_store_memory=512 * 1024 * 1024, dashboard_host="127.0.0.1",
                 runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore::DeprecationWarning"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> Path:
    """The built-in labeled digits set written as train/ and val/ shard folders."""
    from distributed_ssl.data.sample_image import write_digits

    out = tmp_path_factory.mktemp("data") / "digits"
    write_digits(str(out), shard_size=400)
    return out


# One MLflow store for the whole session: creating a SQLite store runs its migrations (~10 s each time).
TRACKING_DB = Path(tempfile.mkdtemp(prefix="dssl-tests-")) / "mlflow.db"


def tiny_overrides(digits: Path, run_dir: Path, **extra) -> list[str]:
    """Overrides that make a real but small training run, in its own MLflow experiment of the session store."""
    values = {
        "tracking.uri": f"sqlite:///{TRACKING_DB}", "tracking.experiment": f"test-{run_dir.parent.name}-{run_dir.name}",
        "data.train": str(digits / "train"), "data.eval": str(digits), "run.dir": str(run_dir),
        "model.encoder": "vit_debug", "train.batch_size": 32, "train.epochs": 2, "train.log_every": 2,
        "train.checkpoint_every": 10, "run.max_failures": 0, "eval.batch_size": 512,
        "tracking.log_model": False,  # ~15 s of export each; tests/test_train_e2e.py covers it once
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def assert_loss_falls(values: list[float]) -> None:
    """The mean of the last quarter of a run's logged loss windows under that of the first quarter (at least two
    windows each). A window's loss varies from batch to batch by a few hundredths (more for contrastive losses at
    small batches), so a run that asserts this must be long enough to learn more than that."""
    assert len(values) >= 6, values
    quarter = max(2, len(values) // 4)
    head, tail = sum(values[:quarter]) / quarter, sum(values[-quarter:]) / quarter
    assert tail < head, values


# What only Ray's, DeepSpeed's and torch's own output prints; none of it may reach the console without -v.
LIBRARY_OUTPUT = ("RayTrainWorker", "TrainController", "TrainingReport", "SplitCoordinator", "Setting accelerator",
                  "FutureWarning", "core_worker", "deepspeed_shm_comm_op", "Started a local Ray instance",
                  "Creating initial MLflow database tables")


def assert_quiet_console(output: str) -> None:
    found = [text for text in LIBRARY_OUTPUT if text in output]
    assert not found, f"library output on the console: {found}\n{output[-3000:]}"


@pytest.fixture(scope="session")
def digits_with_bad(digits, tmp_path_factory) -> Path:
    """The digits train split plus 3 corrupt records (truncated PNG, random bytes, empty) in their own shard."""
    import pyarrow.parquet as pq

    from distributed_ssl.data.manifest import load_manifest, shard_paths
    from distributed_ssl.data.shard_writer import ShardWriter

    out = tmp_path_factory.mktemp("bad") / "train"
    manifest = load_manifest(str(digits / "train"))
    writer = ShardWriter(str(out), "image", shard_size=500, classes=manifest.classes)
    rows = [r for p in shard_paths(str(digits / "train")) for r in pq.read_table(p).to_pylist()]
    for row in rows:
        writer.add(row)
    png = rows[0]["image"]
    for i, data in enumerate([png[: len(png) // 2], bytes(range(256)) * 3, b""]):
        writer.add({"id": f"corrupt-{i}", "image": data, "format": "png", "label": 0, "source": "test"})
    writer.close()
    return out


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` (SQLite backend) that tests may stop and start again; see tests/mlflow_server.py."""
    from tests.mlflow_server import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP spin-waiting when other processes share the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def _one_rank_process_group():
    """One gloo group of one rank for the whole session, as a worker has one for its life: DeepSpeed keeps the
    first group it is handed, so a group destroyed and made again between test modules would leave it a dead one."""
    import torch

    port = free_port()
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield port
    torch.distributed.destroy_process_group()


@pytest.fixture
def gloo_group(_one_rank_process_group, monkeypatch):
    """This process as Ray Train sets up each worker (a gloo group, its env, one thread), for Trainer tests without
    Ray; the env is this test's only, so a Ray cluster started later does not inherit it."""
    import torch

    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_one_rank_process_group), "RANK": "0",
                       "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def sample_sets(tmp_path_factory) -> dict[str, str]:
    """Small real sample sets of every modality (digits, spoken words, LiDAR scenes), written once a session."""
    from tests.small_sample_sets import write_small_sample_sets

    return write_small_sample_sets(tmp_path_factory.mktemp("samples"))

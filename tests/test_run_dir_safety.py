"""`--overwrite` deletes only a folder dssl created as a run, and one run dir has one writer at a time.

`dssl train` pointed at a data set, the working directory or the parent of its own data is refused before Ray
starts, and not one byte of what was there changes. A live run dir's lock keeps a second process out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from distributed_ssl.cli import main
from distributed_ssl.config.loader import ConfigError
from distributed_ssl.data.sample_image import write_digits
from distributed_ssl.launch import trainer
from distributed_ssl.launch.run_dir_guard import LOCK, MARKER, RunLock, check_run_dir, locked, prepare_run_dir
from distributed_ssl.util.run_dir import RunDir
from tests.conftest import tiny_overrides

RECIPE = str(Path(__file__).resolve().parents[1] / "jobs" / "configs" / "image_simclr.yaml")

# Takes the lock of the run dir argv[1], says so, and holds it until its stdin closes (or it is killed).
HOLDER = """\
import sys
from distributed_ssl.launch.run_dir_guard import locked
from distributed_ssl.util.run_dir import RunDir
with locked(RunDir(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def no_ray(monkeypatch):
    """Starting Ray, or joining a cluster, fails the test: a refusal must come before either."""
    def refuse(*_, **__):
        raise AssertionError("Ray was started for a run dir that must be refused")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(trainer, "ensure_ray", refuse)


def _hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (hidden ones too), by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _data_set(folder: Path) -> Path:
    """A converter's output: `train/` and `val/` shard folders, each with its manifest.json."""
    write_digits(str(folder), shard_size=400)
    assert (folder / "train" / "manifest.json").exists() and len(list((folder / "train").glob("*.parquet"))) > 1
    return folder


@contextlib.contextmanager
def _held_by_another_process(run_dir: Path) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held", "the holder process could not take the lock"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@pytest.mark.reliability(failure="`dssl train` (with or without --overwrite) pointed at a data set: a converter's "
                                 "output folder holding train/ and val/ shard folders, or the parent of the run's "
                                 "own data.train, or a shard folder",
                         response="exit 2 before Ray starts, the message says why (already holds a run / no "
                                  ".dssl-run marker / holds this run's data / holds a manifest.json); every file of "
                                  "the data set stays byte-identical and nothing is added")
@pytest.mark.parametrize("target, overwrite, message", [
    ("other_data", False, "already holds a run"),
    ("other_data", True, f"it has no {MARKER} marker"),
    ("own_data_parent", False, "it holds this run's data"),
    ("own_data_parent", True, "it holds this run's data"),
    ("own_data_parent_marked", True, "it holds this run's data"),
    ("shard_folder_with_run", True, "it holds a manifest.json: it is a shard folder"),
    ("bare_shard_folder", False, "it holds a manifest.json: it is a shard folder"),
])
def test_train_into_a_data_set_is_refused_and_the_data_is_untouched(target, overwrite, message, digits, tmp_path,
                                                                    no_ray, capsys):
    data = _data_set(tmp_path / "shards")
    if target == "other_data":  # trains on another data set: run.dir is someone's converter output
        args = tiny_overrides(digits, data)
    elif target.startswith("own_data_parent"):  # run.dir is the parent of data.train and data.eval
        if target.endswith("marked"):  # even one that looks like dssl's run dir: its data comes first
            (data / MARKER).write_text("{}")
        args = tiny_overrides(data, data)
    elif target == "bare_shard_folder":  # a shard folder as run.dir: training would write among the shards
        args = tiny_overrides(digits, data / "train")
    else:  # a shard folder that an earlier run was (wrongly) written into
        (data / "train" / "run.json").write_text("{}")
        args = tiny_overrides(digits, data / "train")
    before = _hashes(data)
    assert main(["train", RECIPE, *args, *(["--overwrite"] if overwrite else [])]) == 2
    err = capsys.readouterr().err
    assert message in err and f"run.dir={data}" in err
    assert _hashes(data) == before


@pytest.mark.reliability(failure="`dssl train run.dir=.` (with or without --overwrite) in a working directory "
                                 "that holds a train/ folder, or a .dssl-run marker",
                         response="exit 2 before Ray starts: the working directory is never deleted; its files "
                                  "stay byte-identical")
@pytest.mark.parametrize("looks_like", ["train_folder", "marker"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_train_into_the_working_directory_is_refused(looks_like, overwrite, digits, tmp_path, monkeypatch, no_ray,
                                                     capsys):
    work = tmp_path / "project"
    work.mkdir()
    (work / "notes.txt").write_text("my notes\n")
    if looks_like == "train_folder":
        (work / "train").mkdir()
        (work / "train" / "script.py").write_text("print('hello')\n")
    else:
        (work / MARKER).write_text("{}")
    monkeypatch.chdir(work)
    before = _hashes(work)
    args = [*tiny_overrides(digits, tmp_path / "unused"), "run.dir=."]  # the later run.dir wins
    assert main(["train", RECIPE, *args, *(["--overwrite"] if overwrite else [])]) == 2
    err = capsys.readouterr().err
    assert ("the working directory" if overwrite else "already holds a run") in err
    assert _hashes(work) == before


@pytest.mark.reliability(failure="--overwrite of a run dir written by a dssl version before the .dssl-run marker "
                                 "(run.json and train/, no marker)",
                         response="refused with exit 2, naming the missing marker; nothing is deleted (the user "
                                  "deletes such a folder by hand)")
def test_overwrite_refuses_an_unmarked_old_run(digits, tmp_path, no_ray, capsys):
    old = tmp_path / "old_run"
    (old / "train" / "checkpoint_000000").mkdir(parents=True)
    (old / "train" / "checkpoint_000000" / "model.pt").write_bytes(os.urandom(64))
    (old / "run.json").write_text(json.dumps({"mlflow_run_id": "x"}))
    before = _hashes(old)
    assert main(["train", RECIPE, *tiny_overrides(digits, old), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"--overwrite refuses to delete run.dir={old}" in err and f"has no {MARKER} marker" in err
    assert _hashes(old) == before


@pytest.mark.reliability(failure="--overwrite of a run dir that dssl created (it carries .dssl-run) while its lock "
                                 "is held",
                         response="everything in it is deleted except the lock file, and it is marked again; "
                                  "--resume keeps everything")
def test_overwrite_empties_a_marked_run_dir_except_the_lock(tmp_path):
    run_dir = RunDir(tmp_path / "run")
    prepare_run_dir(run_dir, resume=False, overwrite=False, protected=[])
    assert run_dir.read_json(MARKER)["kind"] == "run"
    root = tmp_path / "run"
    (root / "train" / "checkpoint_000001").mkdir(parents=True)
    (root / "train" / "checkpoint_000001" / "model.pt").write_bytes(b"weights")
    (root / "run.json").write_text("{}")
    (root / "mlflow_buffer").mkdir()
    (root / "mlflow_buffer" / "record.json").write_text("{}")

    with locked(run_dir):
        with pytest.raises(ConfigError, match="already holds a run"):
            check_run_dir(run_dir, resume=False, overwrite=False, protected=[])
        prepare_run_dir(run_dir, resume=True, overwrite=False, protected=[])  # resume keeps everything
        assert (root / "train" / "checkpoint_000001" / "model.pt").read_bytes() == b"weights"

        prepare_run_dir(run_dir, resume=False, overwrite=True, protected=[])
        assert sorted(p.name for p in root.iterdir()) == sorted([LOCK, MARKER])
        with pytest.raises(ConfigError, match="in use by another dssl process"):  # the lock still holds
            RunLock(run_dir).acquire()


@pytest.mark.reliability(failure="a second dssl process takes the run dir of a live run; the holder is then "
                                 "SIGKILLed",
                         response="the second is refused with a ConfigError naming the run dir and the holder; "
                                  "once the holder is dead (the kernel drops its flock) the lock can be taken")
def test_run_lock_keeps_a_second_process_out_until_the_holder_dies(tmp_path):
    path = tmp_path / "run"
    with _held_by_another_process(path) as holder:
        with pytest.raises(ConfigError) as refused:
            RunLock(RunDir(path)).acquire()
        assert f"run.dir={path} is in use by another dssl process" in str(refused.value)
        assert f":{holder.pid}:" in str(refused.value)  # the holder as host:pid:token
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with locked(RunDir(path)) as lock:  # a dead holder's lock file does not block
        assert (path / LOCK).read_text() == lock.owner
    with locked(RunDir(path)):  # released on exit
        pass


@pytest.mark.reliability(failure="`dssl train --overwrite` into the run dir of a live run (another process holds "
                                 "its lock)",
                         response="exit 2 naming the run dir in use; nothing of the live run is deleted")
def test_train_overwrite_of_a_live_run_is_refused(digits, tmp_path, monkeypatch, capsys):
    run = tmp_path / "live"
    prepare_run_dir(RunDir(run), resume=False, overwrite=False, protected=[])
    (run / "run.json").write_text("{}")
    (run / "train").mkdir()
    (run / "train" / "progress.txt").write_text("epoch 3\n")
    # NOTE: run_training takes the lock only after ensure_ray (and the cluster checks), so Ray would start here
    # first; both are stubbed out. Training itself must never be reached.
    monkeypatch.setattr(ray, "init", lambda *_, **__: pytest.fail("Ray was started"))
    monkeypatch.setattr(trainer, "ensure_ray", lambda cfg: None)
    monkeypatch.setattr(trainer, "check_cluster", lambda *_: None)
    monkeypatch.setattr(trainer, "_train", lambda *_: pytest.fail("a live run dir was trained into"))
    with _held_by_another_process(run):
        before = _hashes(run)
        assert main(["train", RECIPE, *tiny_overrides(digits, run), "--overwrite"]) == 2
        assert f"run.dir={run} is in use by another dssl process" in capsys.readouterr().err
        assert _hashes(run) == before

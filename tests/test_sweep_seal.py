"""`dssl tune --resume` unpickles Ray Tune's state only when this sweep's seal vouches for every such file.

A real Tune experiment (a tiny function trainable on the session's local Ray) runs with `SweepSealCallback`;
its state then verifies, and each change someone with write access to the sweep dir could make is refused.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from distributed_ssl.engine.file_manifest import KEY_ENV, ManifestError, sign
from distributed_ssl.launch.sweep_seal import (
    SEAL_FILE,
    SweepSealCallback,
    seal_tuner_file,
    verify_sweep_state,
)
from tests.test_checkpoint_manifest import _MarkerPickle


def _sealed_sweep(sweep_dir: Path) -> Path:
    from ray import tune

    def trainable(config):
        for step in range(2):
            time.sleep(0.2)
            tune.report({"score": step * config["a"]})

    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 0.1}), param_space={"a": tune.grid_search([1, 2])},
                       run_config=tune.RunConfig(name="tune", storage_path=str(sweep_dir),
                                                 callbacks=[SweepSealCallback(sweep_dir)]))
    seal_tuner_file(sweep_dir, sweep_dir / "tune", resume=False)
    tuner.fit()
    return sweep_dir / "tune"


@pytest.mark.slow
@pytest.mark.reliability(failure="a sweep dir's Ray Tune state changed before `dssl tune --resume`: a trial's "
                                 "params.pkl replaced by a code-running pickle, an extra pickle planted, the seal "
                                 "removed or re-signed without DSSL_CHECKPOINT_KEY",
                         response="resume is refused before Tune unpickles anything, naming the sweep and the file; "
                                  "the untouched sweep verifies")
def test_resume_refuses_tune_state_the_sweep_did_not_write(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sweep-key")
    tune_dir = _sealed_sweep(tmp_path / "sweep")
    verify_sweep_state(tmp_path / "sweep", tune_dir)
    sealed = json.loads((tmp_path / "sweep" / SEAL_FILE).read_text())
    assert "tuner.pkl" in sealed["files"] and sealed["signature"]
    assert any(name.startswith("experiment_state-") for name in sealed["files"])
    marker = tmp_path / "marker"

    def case(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(tmp_path / "sweep", copy)
        return copy

    replaced = case("replaced")
    params = next((replaced / "tune").glob("*/params.pkl"))
    torch.save(_MarkerPickle(str(marker)), params)
    with pytest.raises(ManifestError, match=rf"sweep {replaced}: tune/.*params.pkl does not match"):
        verify_sweep_state(replaced, replaced / "tune")

    planted = case("planted")
    torch.save(_MarkerPickle(str(marker)), planted / "tune" / "searcher-state-2099-01-01_00-00-00.pkl")
    with pytest.raises(ManifestError, match="searcher-state-2099-01-01_00-00-00.pkl is not in"):
        verify_sweep_state(planted, planted / "tune")

    unsealed = case("unsealed")
    (unsealed / SEAL_FILE).unlink()
    with pytest.raises(ManifestError, match=f"no {SEAL_FILE}"):
        verify_sweep_state(unsealed, unsealed / "tune")

    resigned = case("resigned")
    seal = json.loads((resigned / SEAL_FILE).read_text())
    (resigned / SEAL_FILE).write_text(json.dumps(sign(seal, None)))
    with pytest.raises(ManifestError, match="not signed"):
        verify_sweep_state(resigned, resigned / "tune")
    assert not marker.exists()


def test_run_sweep_resume_checks_the_seal_before_starting_anything(digits, tmp_path):
    from distributed_ssl.launch.sweep import run_sweep
    from tests.test_tune import _sweep_cfg

    sweep_dir = tmp_path / "sweep"
    (sweep_dir / "tune").mkdir(parents=True)
    marker = tmp_path / "marker"
    torch.save(_MarkerPickle(str(marker)), sweep_dir / "tune" / "tuner.pkl")  # what Tuner.restore unpickles first
    with pytest.raises(ManifestError, match=f"sweep {sweep_dir}: no {SEAL_FILE}"):
        run_sweep(_sweep_cfg(digits, sweep_dir), resume=True)
    assert not marker.exists()

"""`dssl submit` / `dssl jobs`: validation before anything is sent, and the upload's contents.

The real job (submitted from an empty directory to a two-node cluster whose Python has no distributed_ssl, then
`dssl jobs status|logs|list`) runs in tests/test_cluster_storage.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from distributed_ssl.cli import main
from distributed_ssl.config.loader import ConfigError
from distributed_ssl.launch.job_submission import JOB_CONFIG_NAME, prepare_submission
from distributed_ssl.launch.ray_runtime import PACKAGE_DIR, PACKAGE_EXCLUDES

RECIPE = Path(__file__).resolve().parents[1] / "jobs" / "configs" / "image_simclr.yaml"
UNREACHABLE = "http://127.0.0.1:9"  # nothing listens: a test that reaches the network fails differently


def test_invalid_config_fails_before_submission_naming_key_and_reason(capsys):
    code = main(["submit", str(RECIPE), "train.epochs=0", "data.train=/abs/x", "data.eval=/abs/y", "run.dir=/abs/r",
                 "--address", UNREACHABLE])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.epochs" in err and "greater than or equal to 1" in err
    assert "Jobs API" not in err and "Connection" not in err  # it never tried to connect


def test_unknown_key_and_relative_paths_are_refused(capsys):
    assert main(["submit", str(RECIPE), "train.epoch=3", "--address", UNREACHABLE]) == 2
    assert "train.epoch: unknown key" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"data\.train=data/digits/train is a relative path"):
        prepare_submission(str(RECIPE), [])


def test_runtime_env_ships_package_and_resolved_config(tmp_path):
    sub, staging = prepare_submission(str(RECIPE), [f"data.train={tmp_path}/t", f"data.eval={tmp_path}/e",
                                                    f"run.dir={tmp_path}/r", "train.epochs=3"], tune=True)
    env = sub.runtime_env
    assert env["py_modules"] == [str(PACKAGE_DIR)] and Path(env["working_dir"]) == staging
    assert env["excludes"] == PACKAGE_EXCLUDES
    assert sub.entrypoint == f"python -m distributed_ssl.cli tune {JOB_CONFIG_NAME}"
    shipped = (staging / JOB_CONFIG_NAME).read_text()
    assert "epochs: 3" in shipped and sub.submission_id in shipped  # run.name defaults to the job id
    assert sorted(p.name for p in staging.iterdir()) == [JOB_CONFIG_NAME]


def test_uploaded_package_zip_holds_every_module(tmp_path):
    """The zip Ray builds for `py_modules` (its own packaging code, same options) holds every module of the
    package, the `data` sub-package included, and no byte code."""
    import zipfile

    from ray._private.runtime_env.packaging import create_package

    target = tmp_path / "pkg.zip"
    create_package(str(PACKAGE_DIR), target, include_gitignore=True, include_parent_dir=True,
                   excludes=PACKAGE_EXCLUDES)
    names = set(zipfile.ZipFile(target).namelist())
    modules = {str(p.relative_to(PACKAGE_DIR.parent)) for p in PACKAGE_DIR.rglob("*.py")
               if "__pycache__" not in p.parts}
    assert len(modules) > 100 and "distributed_ssl/data/train_records.py" in modules
    assert modules - names == set()
    assert not [n for n in names if n.endswith(".pyc")]

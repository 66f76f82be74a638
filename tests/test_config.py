from pathlib import Path

import pytest

from distributed_ssl.cli import main
from distributed_ssl.config import ConfigError, load_config, save_config
from distributed_ssl.config.overrides import flatten, parse_override

RECIPES = sorted(Path(__file__).resolve().parents[1].joinpath("jobs", "configs").glob("*.yaml"))


def test_required_keys_exist_and_override():
    cfg = load_config(None, ["data.train=/x", "data.eval=null", "run.dir=r", "train.epochs=3", "train.max_steps=7",
                             "train.batch_size=16", "scaling.num_workers=4", "deepspeed.zero_stage=3",
                             "tracking.uri=http://127.0.0.1:5000"])
    assert cfg.data.train == "/x" and cfg.data.eval is None and cfg.run.dir == "r"
    assert (cfg.train.epochs, cfg.train.max_steps, cfg.train.batch_size) == (3, 7, 16)
    assert cfg.scaling.num_workers == 4 and cfg.deepspeed.zero_stage == 3
    assert cfg.tracking.uri == "http://127.0.0.1:5000"


def test_unknown_key_names_the_path():
    with pytest.raises(ConfigError, match=r"train\.epoch: unknown key"):
        load_config(None, ["train.epoch=3"])


def test_bad_value_names_the_path_and_reason():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["deepspeed.zero_stage=5", "method.name=mae", "mask.ratio=1.5"])
    text = str(err.value)
    assert "deepspeed.zero_stage" in text and "mask.ratio" in text and "1.5" in text


def test_cross_field_rule():
    with pytest.raises(ConfigError, match="offload_params needs zero_stage 3"):
        load_config(None, ["deepspeed.offload_params=true", "deepspeed.zero_stage=2"])


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("train:\n  batch_size: many\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml[\s\S]*train\.batch_size"):
        load_config(wrong)


def test_override_parsing():
    assert parse_override("optim.lr=1e-3") == ("optim.lr", 1e-3)
    assert parse_override("run.name=a=b") == ("run.name", "a=b")
    with pytest.raises(ValueError, match="key=value"):
        parse_override("train.epochs")


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipes_load_and_round_trip(recipe, tmp_path):
    cfg = load_config(recipe)
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert "train.batch_size" in flatten(cfg.model_dump(mode="json"))


def test_config_show_cli(capsys):
    assert main(["config", "show", str(RECIPES[0]), "train.epochs=9"]) == 0
    assert "epochs: 9" in capsys.readouterr().out
    assert main(["config", "show", str(RECIPES[0]), "train.bogus=1"]) == 2
    assert "train.bogus: unknown key" in capsys.readouterr().err

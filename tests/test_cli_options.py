"""Options may stand before or after the positionals and overrides of every `dssl` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from distributed_ssl.cli import _config_or_resume, build_parser, main

RECIPE = str(Path(__file__).resolve().parents[1] / "jobs" / "configs" / "image_simclr.yaml")
OVERRIDES = ["train.epochs=3", "model.encoder=vit_debug"]


def parsed(argv: list[str]) -> dict:
    ns = vars(build_parser().parse_args(argv))
    ns.pop("fn")
    return ns


@pytest.mark.parametrize("command", ["train", "tune"])
def test_train_and_tune_take_flags_anywhere(command):
    flag_last = parsed([command, RECIPE, *OVERRIDES, "--overwrite"])
    flag_between = parsed([command, RECIPE, "--overwrite", *OVERRIDES])
    flag_first = parsed([command, "--overwrite", RECIPE, *OVERRIDES])
    assert flag_last == flag_between == flag_first
    assert flag_last["args"] == [RECIPE, *OVERRIDES]
    assert flag_last["overwrite"] is True and flag_last["resume"] is None


@pytest.mark.parametrize("command", ["train", "tune"])
def test_resume_with_overrides_in_both_orders(command):
    before = parsed([command, "--resume", "runs/a", "train.epochs=4"])
    after = parsed([command, "train.epochs=4", "--resume", "runs/a"])
    assert before == after
    assert before["resume"] == "runs/a" and before["args"] == ["train.epochs=4"]


def test_train_config_resolves_the_same_in_both_orders():
    first = _config_or_resume(build_parser().parse_args(["train", "--overwrite", RECIPE, *OVERRIDES]),
                              "config.yaml", "missing")
    last = _config_or_resume(build_parser().parse_args(["train", RECIPE, *OVERRIDES, "--overwrite"]),
                             "config.yaml", "missing")
    assert first.model_dump() == last.model_dump()
    assert first.train.epochs == 3 and first.model.encoder == "vit_debug"


def test_submit_options_after_overrides():
    address = "http://10.0.0.1:8265"
    before = parsed(["submit", "--address", address, "--tune", "--wait", RECIPE, *OVERRIDES])
    after = parsed(["submit", RECIPE, "--address", address, *OVERRIDES, "--tune", "--wait"])
    assert before == after
    assert (after["config"], after["overrides"], after["address"]) == (RECIPE, OVERRIDES, address)
    assert after["tune"] is True and after["wait"] is True


def test_retrain_options_after_overrides():
    before = parsed(["retrain", "--every", "6h", "--max-passes", "2", RECIPE, *OVERRIDES])
    after = parsed(["retrain", RECIPE, *OVERRIDES, "--every", "6h", "--max-passes", "2"])
    assert before == after
    assert (after["config"], after["overrides"], after["every"], after["max_passes"]) == (RECIPE, OVERRIDES, "6h", 2)


def test_eval_options_before_and_after_run_dir():
    assert parsed(["eval", "--data", "d", "--out", "r.json", "runs/a"]) == parsed(["eval", "runs/a", "--data", "d",
                                                                                  "--out", "r.json"])


def test_config_show_and_verbose_anywhere(capsys):
    assert parsed(["config", "show", "-v", RECIPE, "train.epochs=9"]) == parsed(["-v", "config", "show", RECIPE,
                                                                                   "train.epochs=9"])
    assert parsed(["config", "show", RECIPE, "-v"])["verbose"] is True
    assert parsed(["config", "show", RECIPE])["verbose"] is False
    assert main(["config", "show", RECIPE, "-v", "train.epochs=9"]) == 0
    assert "epochs: 9" in capsys.readouterr().out


def test_unknown_option_still_fails(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", RECIPE, "--bogus"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err

"""Methods and modalities own their config: unions on `name`, foreign keys refused naming their owner, every recipe
and sweep space loads, overrides that switch the method or modality work."""

from pathlib import Path

import pytest
import yaml

from distributed_ssl.config import ConfigError, load_config, save_config
from distributed_ssl.config.flatten import flat_params
from distributed_ssl.config.method_configs import METHOD_CONFIGS, DINOConfig
from distributed_ssl.config.modality_configs import MODALITY_CONFIGS, AudioAugmentConfig, AudioConfig
from distributed_ssl.config.search_space import check_space_fits
from distributed_ssl.methods.registry import build_method, method_names, view_spec_for
from distributed_ssl.modalities.registry import modality_names

CONFIGS = sorted(Path(__file__).resolve().parents[1].joinpath("jobs", "configs").glob("*.yaml"))
SWEEPS = [p for p in CONFIGS if yaml.safe_load(p.read_text()).get("tune", {}).get("space")]


def test_every_config_class_has_a_registered_implementation():
    assert method_names() == sorted(METHOD_CONFIGS)
    assert modality_names() == sorted(MODALITY_CONFIGS)


@pytest.mark.parametrize("modality", sorted(MODALITY_CONFIGS))
@pytest.mark.parametrize("method", sorted(METHOD_CONFIGS))
def test_each_method_and_modality_round_trips_through_yaml(method, modality, tmp_path):
    cfg = load_config(None, [f"method.name={method}", f"modality.name={modality}"])
    assert type(cfg.method) is METHOD_CONFIGS[method] and type(cfg.modality) is MODALITY_CONFIGS[modality]
    assert type(cfg.mask) is METHOD_CONFIGS[method].mask_config
    assert type(cfg.augment) is MODALITY_CONFIGS[modality].augment_config
    save_config(cfg, tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    assert "kind" not in text  # the variant tag of augment and mask is derived, never written
    assert load_config(tmp_path / "c.yaml") == cfg
    flat = flat_params(cfg)
    assert flat["method.name"] == method and flat["modality.name"] == modality
    assert not any(k.endswith(".kind") for k in flat)


def _foreign_keys(classes: dict[str, type], name: str) -> list[tuple[str, str]]:
    """(key, an owner) for every key of another variant that `name`'s class lacks."""
    own = classes[name].model_fields
    return sorted({(key, other) for other, cls in classes.items() for key in cls.model_fields
                   if key not in own and key not in ("kind", "name")})


@pytest.mark.parametrize("method", sorted(METHOD_CONFIGS))
def test_each_method_refuses_a_key_of_another_naming_key_and_owner(method):
    for key, owner in _foreign_keys(METHOD_CONFIGS, method):
        with pytest.raises(ConfigError) as err:
            load_config(None, [f"method.name={method}", f"method.{key}=1"])
        text = str(err.value)
        assert f"method.{key} is not a key of method {method} (it belongs to " in text and owner in text


@pytest.mark.parametrize("modality", sorted(MODALITY_CONFIGS))
def test_each_modality_refuses_a_key_of_another_naming_key_and_owner(modality):
    for key, owner in _foreign_keys(MODALITY_CONFIGS, modality):
        with pytest.raises(ConfigError) as err:
            load_config(None, [f"modality.name={modality}", f"modality.{key}=1"])
        text = str(err.value)
        assert f"modality.{key} is not a key of modality {modality} (it belongs to " in text and owner in text


def test_foreign_key_messages_read_as_documented():
    cases = {
        "method.dino_out_dim=64": "method.dino_out_dim is not a key of method simclr (it belongs to dino)",
        "modality.n_mels=16": "modality.n_mels is not a key of modality image (it belongs to audio)",
        "augment.audio_gain_db=3": "augment.audio_gain_db is not a key of augment for modality image "
                                   "(it belongs to audio)",
        "mask.ratio=0.5": "mask.ratio is not a key of mask for method simclr (it belongs to mae)",
        "method.momentum_base=0.9": "method.momentum_base is not a key of method simclr (it belongs to byol, dino, "
                                    "jepa)",
    }
    for override, message in cases.items():
        with pytest.raises(ConfigError) as err:
            load_config(None, [override])
        assert message in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(None, ["method.name=jepa", "mask.ratio=0.5"])
    assert "mask.ratio is not a key of mask for method jepa (it belongs to mae)" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(None, ["modality.name=audio", "augment.point_crop_min=0.5", "augment.crop_scale_min=0.5"])
    assert "augment.point_crop_min is not a key of augment for modality audio (it belongs to lidar)" in str(err.value)
    assert "augment.crop_scale_min is not a key of augment for modality audio (it belongs to image)" in str(err.value)


def test_unknown_keys_and_names_keep_their_message():
    with pytest.raises(ConfigError, match=r"method\.bogus: unknown key"):
        load_config(None, ["method.bogus=1"])
    with pytest.raises(ConfigError, match=r"augment\.bogus: unknown key"):
        load_config(None, ["augment.bogus=1"])
    with pytest.raises(ConfigError) as err:
        load_config(None, ["method.name=swav"])
    assert "method.name: unknown method 'swav'; known: byol, dino, jepa, mae, simclr" in str(err.value)
    assert "mask" not in str(err.value)  # no follow-on error on the section the unknown method would select
    with pytest.raises(ConfigError, match=r"modality\.name: unknown modality 'video'"):
        load_config(None, ["modality.name=video"])
    with pytest.raises(ConfigError, match=r"method\.num_local_views: Input should be less than or equal to 16"):
        load_config(None, ["method.name=dino", "method.num_local_views=99"])
    with pytest.raises(ConfigError, match="local_crop_scale_min 0.5 exceeds"):
        load_config(None, ["method.name=dino", "method.local_crop_scale_min=0.5", "method.local_crop_scale_max=0.4"])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_recipe_and_sweep_space_loads(path):
    cfg = load_config(path)
    assert cfg.method.name == yaml.safe_load(path.read_text())["method"]["name"]
    check_space_fits(cfg)  # every search-space key and bound fits the selected method and modality
    view_spec_for(cfg)


def test_sweeps_are_found():
    assert {p.name for p in SWEEPS} >= {"sweep_image_simclr.yaml", "sweep_image_simclr_pbt.yaml"}


def test_search_space_keys_validate_against_the_selected_method():
    ok = load_config(None, {"tune.space": {"method.temperature": "uniform(0.1, 0.3)"}})
    check_space_fits(ok)
    bad = load_config(None, {"method.name": "dino", "tune.space": {"method.temperature": "uniform(0.1, 0.3)"}})
    with pytest.raises(ConfigError, match=r"method.temperature is not a key of method dino \(it belongs to simclr\)"):
        check_space_fits(bad)
    dino = load_config(None, {"method.name": "dino", "tune.space": {"method.teacher_temp": "uniform(0.03, 0.07)"}})
    check_space_fits(dino)


@pytest.mark.parametrize("new", sorted(METHOD_CONFIGS))
@pytest.mark.parametrize("old", sorted(METHOD_CONFIGS))
def test_overrides_switch_the_method_of_a_saved_config(old, new, tmp_path):
    """A saved config holds every key of its method as a default; switching the method drops those the new method
    lacks, unless they were changed from the default."""
    save_config(load_config(None, [f"method.name={old}", "modality.name=audio"]), tmp_path / "c.yaml")
    cfg = load_config(tmp_path / "c.yaml", [f"method.name={new}"])
    assert cfg == load_config(None, [f"method.name={new}", "modality.name=audio"])


@pytest.mark.parametrize("new", sorted(METHOD_CONFIGS))
@pytest.mark.parametrize("path", [p for p in CONFIGS if p not in SWEEPS], ids=lambda p: p.name)
def test_switching_a_recipe_keeps_its_values_or_names_the_tuned_key(path, new):
    try:
        cfg = load_config(path, [f"method.name={new}"])
    except ConfigError as exc:  # the recipe tuned a key the new method does not have
        assert "is not a key of" in str(exc) and "unknown key" not in str(exc)
    else:
        base = load_config(path)
        assert cfg.modality == base.modality and cfg.augment == base.augment
        shared = set(type(base.method).model_fields) & set(type(cfg.method).model_fields) - {"name"}
        assert all(getattr(cfg.method, k) == getattr(base.method, k) for k in shared)


def test_switching_keeps_shared_keys_and_refuses_a_changed_foreign_one():
    dino = load_config("jobs/configs/image_byol.yaml", ["method.name=dino"])
    assert isinstance(dino.method, DINOConfig)
    assert dino.method.momentum_base == 0.99 and dino.method.proj_hidden_dim == 512  # shared keys carry over
    with pytest.raises(ConfigError, match=r"method.temperature is not a key of method byol \(it belongs to simclr\)"):
        load_config(None, ["method.temperature=0.5", "method.name=byol"])
    with pytest.raises(ConfigError, match=r"method.temperature is not a key of method byol"):
        load_config(None, {"method": {"name": "simclr", "temperature": 0.5}, "method.name": "byol"})
    with pytest.raises(ConfigError, match=r"mask.ratio is not a key of mask for method jepa"):
        load_config("jobs/configs/lidar_mae.yaml", ["method.name=jepa"])  # the recipe set mask.ratio=0.6
    audio = load_config("jobs/configs/image_simclr.yaml", ["modality.name=audio", "augment={}"])
    assert isinstance(audio.modality, AudioConfig) and isinstance(audio.augment, AudioAugmentConfig)


def test_a_switched_modality_refuses_its_old_augment_keys_when_set():
    with pytest.raises(ConfigError, match=r"augment.flip_prob is not a key of augment for modality audio"):
        load_config("jobs/configs/image_simclr.yaml", ["modality.name=audio"])  # the recipe set flip_prob=0


def test_dino_is_built_from_its_config():
    cfg = load_config("jobs/configs/image_dino.yaml", ["model.encoder=vit_debug", "method.dino_out_dim=64",
                                                        "method.num_local_views=2"])
    assert isinstance(cfg.method, DINOConfig)
    method = build_method(cfg)
    assert method.num_local_views == 2 and method.criterion.center.shape[-1] == 64
    spec = view_spec_for(cfg)
    assert (spec.num_views, spec.num_local_views, spec.local_scale) == (2, 2, (0.1, 0.4))


def test_assigning_a_method_of_another_mask_fails_clearly():
    cfg = load_config(None)
    with pytest.raises(ValueError, match="mask holds NoMaskConfig but method.name=mae takes RandomMaskConfig"):
        cfg.method = METHOD_CONFIGS["mae"]()

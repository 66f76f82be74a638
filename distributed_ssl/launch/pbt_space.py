"""Population Based Training over `tune.space`: which keys may change mid-run, and how they are perturbed.

A PBT trial is restarted from another trial's checkpoint with perturbed values, so only keys that a
checkpoint restore does not fix may be swept: augmentation and masking strengths (the data pipeline is
rebuilt), the loss temperature, and the optimizer's lr and weight decay (re-applied after the restore).
Architecture, batch size or method keys would not fit the donor's weights or optimizer state.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from distributed_ssl.config.loader import ConfigError
from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.config.search_space import Distribution, parse_expression

MUTABLE_PREFIXES = ("augment.", "mask.")
MUTABLE_KEYS = ("method.temperature", "optim.lr", "optim.weight_decay")
PBT_TIME_ATTR = "pbt_epoch"  # set on every epoch-end report except a trial's last, see launch/pbt_trial.py


def check_mutable_keys(space: dict[str, str]) -> None:
    """Fail naming the first swept key that cannot change when a trial is restored from another's checkpoint."""
    for key in space:
        if not (key.startswith(MUTABLE_PREFIXES) or key in MUTABLE_KEYS):
            raise ConfigError(
                f"tune.space[{key!r}]: tune.scheduler=pbt restarts trials from another trial's checkpoint, so "
                f"{key} cannot change mid-run; PBT may sweep augment.*, mask.*, {', '.join(MUTABLE_KEYS)}")


def hyperparam_mutations(space: dict[str, str]) -> dict[str, Any]:
    """PBT's mutation spec: lists for choice/grid axes (shifted to a neighbour), Tune domains otherwise."""
    from distributed_ssl.config.search_space import to_tune_domain

    mutations: dict[str, Any] = {}
    for key, expr in space.items():
        dist = parse_expression(expr)
        mutations[key] = list(dist.args[0]) if dist.kind in ("choice", "grid") else to_tune_domain(dist, False)
    return mutations


def clip_to_space(value: Any, dist: Distribution) -> Any:
    """A perturbed value (old × 0.8 or × 1.2) put back inside its distribution's bounds and grid."""
    if dist.kind in ("choice", "grid") or not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    if dist.kind == "randint":  # randint's upper bound is exclusive
        return int(min(max(round(value), dist.args[0]), dist.args[1] - 1))
    low, high = dist.args[0], dist.args[1]
    value = min(max(float(value), low), high)
    if dist.kind == "quniform":
        q = dist.args[2]
        value = min(max(round(value / q) * q, math.ceil(low / q) * q), math.floor(high / q) * q)
    return value


def _clip_config(config: dict[str, Any], space: dict[str, str]) -> dict[str, Any]:
    for key, expr in space.items():
        if key in config:
            config[key] = clip_to_space(config[key], parse_expression(expr))
    return config


def build_pbt_scheduler(cfg: SSLConfig):
    """Ray Tune's PopulationBasedTraining over epochs, with every swept key mutable and kept in its bounds."""
    from ray.tune.schedulers import PopulationBasedTraining

    check_mutable_keys(cfg.tune.space)
    return PopulationBasedTraining(
        time_attr=PBT_TIME_ATTR, perturbation_interval=cfg.tune.perturbation_interval,
        hyperparam_mutations=hyperparam_mutations(cfg.tune.space),
        quantile_fraction=cfg.tune.quantile_fraction, resample_probability=cfg.tune.resample_probability,
        custom_explore_fn=functools.partial(_clip_config, space=dict(cfg.tune.space)),
        synch=cfg.tune.pbt_synch, require_attrs=False)

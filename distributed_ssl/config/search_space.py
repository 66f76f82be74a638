"""Search-space expressions over dotted config keys, e.g. `augment.crop_scale_min: uniform(0.08, 0.5)`.

Expressions are parsed without `eval`: a function name from a fixed set and literal arguments.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

_EXPR = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.DOTALL)
_ARITY = {"uniform": 2, "loguniform": 2, "randint": 2, "quniform": 3, "choice": 1, "grid": 1}


@dataclass(frozen=True)
class Distribution:
    kind: str
    args: tuple[Any, ...]

    def values_for_check(self) -> list[Any]:
        """Values that a config must accept for this key (bounds, or every option)."""
        if self.kind in ("choice", "grid"):
            return list(self.args[0])
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return [self.args[0], self.args[1]]


def parse_expression(text: str) -> Distribution:
    """`uniform(0.1, 0.5)` → Distribution("uniform", (0.1, 0.5)); raises ValueError saying what is wrong."""
    match = _EXPR.match(text)
    if not match:
        raise ValueError(f"{text!r} is not of the form name(args); use one of {', '.join(sorted(_ARITY))}")
    kind, raw = match.groups()
    if kind not in _ARITY:
        raise ValueError(f"unknown distribution {kind!r} in {text!r}; use one of {', '.join(sorted(_ARITY))}")
    try:
        args = ast.literal_eval(f"[{raw}]")
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"arguments of {text!r} are not literals: {exc}") from None
    if len(args) != _ARITY[kind]:
        raise ValueError(f"{kind} takes {_ARITY[kind]} argument(s), got {len(args)} in {text!r}")
    if kind in ("choice", "grid"):
        if not isinstance(args[0], list) or not args[0]:
            raise ValueError(f"{kind} needs a non-empty list, e.g. {kind}([0.5, 0.75]); got {text!r}")
    else:
        if not all(isinstance(a, (int, float)) for a in args):
            raise ValueError(f"{kind} needs numbers, got {text!r}")
        if args[0] >= args[1]:
            raise ValueError(f"{kind} needs low < high, got {text!r}")
        if kind == "loguniform" and args[0] <= 0:
            raise ValueError(f"loguniform needs positive bounds, got {text!r}")
        if kind == "randint" and not all(isinstance(a, int) for a in args):
            raise ValueError(f"randint needs integers, got {text!r}")
    return Distribution(kind, tuple(args))


def check_space_fits(cfg: Any) -> None:
    """Every key and candidate value of `cfg.tune.space` validated against the config, the selected method and
    modality included (`method.temperature` fits SimCLR, not BYOL); raises ConfigError naming the key."""
    from distributed_ssl.config.loader import ConfigError, resolve_config

    base = cfg.model_dump(mode="json")
    for key, expr in cfg.tune.space.items():
        for value in parse_expression(expr).values_for_check():
            try:
                resolve_config(base, {key: value}, source=f"tune.space[{key!r}]")
            except ConfigError as exc:
                raise ConfigError(f"tune.space[{key!r}] = {expr!r} does not fit the config:\n{exc}") from None


def to_tune_domain(dist: Distribution, grid_search: bool) -> Any:
    """The Ray Tune sampler for a distribution; `choice` becomes a grid axis under grid search."""
    from ray import tune

    if dist.kind == "grid" or (grid_search and dist.kind == "choice"):
        return tune.grid_search(list(dist.args[0]))
    if grid_search:
        raise ValueError(f"grid search needs grid([...]) or choice([...]) axes, not {dist.kind}")
    return {
        "uniform": lambda a: tune.uniform(*a),
        "loguniform": lambda a: tune.loguniform(*a),
        "randint": lambda a: tune.randint(*a),
        "quniform": lambda a: tune.quniform(*a),
        "choice": lambda a: tune.choice(list(a[0])),
    }[dist.kind](dist.args)

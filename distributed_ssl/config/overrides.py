"""Dotted `key=value` overrides, shared by the command line and Ray Tune.

Values are parsed as YAML scalars so `train.epochs=5` is an int and `data.eval=null` is None.
"""

from __future__ import annotations

from typing import Any

import yaml


class OverrideError(ValueError):
    """An override string that is not `dotted.key=value`."""


def parse_override(text: str) -> tuple[str, Any]:
    """Split `a.b=value` into its key path and YAML-parsed value."""
    if "=" not in text:
        raise OverrideError(f"override {text!r} is not of the form key=value (e.g. train.epochs=5)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise OverrideError(f"override {text!r} has an empty key segment")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string
            value = float(value) if any(c.isdigit() for c in value) else value
        except ValueError:
            pass
    return key, value


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set `tree[a][b] = value` for key `a.b`, creating intermediate sections."""
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise OverrideError(f"cannot set {key!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def apply_overrides(tree: dict[str, Any], overrides: dict[str, Any] | list[str]) -> dict[str, Any]:
    """Return a copy of `tree` with dotted overrides applied (a list of strings or a dict of key → value)."""
    import copy

    result = copy.deepcopy(tree)
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    for key, value in items:
        set_dotted(result, key, value)
    return result


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` → `{"a.b": 1}`: the form MLflow params and Tune search spaces use."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat

"""Load, validate and save configurations, with errors that name the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from distributed_ssl.config.credentials import credential_problems
from distributed_ssl.config.overrides import OverrideError, apply_overrides
from distributed_ssl.config.schema import DEPENDENT_SECTIONS, UNION_SECTIONS, SSLConfig


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file, the key path and the reason."""


def _selected(tree: dict[str, Any], section: str) -> str:
    """The `name` a union section selects in a raw tree (its default when unset)."""
    value = tree.get(section)
    default = UNION_SECTIONS[section][1]
    return str(value.get("name", default)) if isinstance(value, dict) else default


def _variant_classes(section: str) -> dict[str, type]:
    """The classes a union or dependent section may take, by the owner name that selects each."""
    if section in UNION_SECTIONS:
        return dict(UNION_SECTIONS[section][0])
    owner, attr = DEPENDENT_SECTIONS[section]
    return {name: getattr(cls, attr) for name, cls in UNION_SECTIONS[owner][0].items()}


def _variant_tags(section: str) -> set[str]:
    tag_field = "name" if section in UNION_SECTIONS else "kind"
    return {cls.model_fields[tag_field].default for cls in _variant_classes(section).values()}


def _foreign_key_reason(section: str, key: str, tree: dict[str, Any]) -> str | None:
    """`method.dino_out_dim is not a key of method simclr (it belongs to dino)`, or None for a key no variant has."""
    classes = _variant_classes(section)
    owners = sorted(name for name, cls in classes.items() if key in cls.model_fields and key not in ("kind", "name"))
    if not owners:
        return None
    if section in UNION_SECTIONS:
        where = f"{section} {_selected(tree, section)}"
    else:
        owner = DEPENDENT_SECTIONS[section][0]
        where = f"{section} for {owner} {_selected(tree, owner)}"
    return f"{section}.{key} is not a key of {where} (it belongs to {', '.join(owners)})"


def _format_validation_error(err: ValidationError, source: str, tree: dict[str, Any] | None = None) -> str:
    tree = tree or {}
    lines = [f"invalid configuration ({source}):"]
    for item in err.errors():
        loc = list(item["loc"])
        section = str(loc[0]) if loc else ""
        if section in DEPENDENT_SECTIONS and item["type"] == "union_tag_not_found":
            continue  # its owner's name is unknown, which is reported on the owner
        if section in UNION_SECTIONS and item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            known = ", ".join(sorted(UNION_SECTIONS[section][0]))
            lines.append(f"  {section}.name: unknown {section} {_selected(tree, section)!r}; known: {known}")
            continue
        if section in UNION_SECTIONS.keys() | DEPENDENT_SECTIONS.keys() and len(loc) > 1 \
                and loc[1] in _variant_tags(section):
            del loc[1]  # the union's tag: the key path a user writes has no such level
        path = ".".join(str(p) for p in loc) or "<root>"
        if item["type"] == "extra_forbidden":
            variant = section in UNION_SECTIONS or section in DEPENDENT_SECTIONS
            foreign = _foreign_key_reason(section, str(loc[-1]), tree) if variant and len(loc) == 2 else None
            if foreign:
                lines.append(f"  {foreign}")
                continue
            reason = "unknown key"
        else:
            reason = item["msg"]
            if "input" in item and not isinstance(item["input"], dict):
                reason += f" (got {item['input']!r})"
        lines.append(f"  {path}: {reason}")
    return "\n".join(lines)


def _drop_defaults_of_replaced_variants(tree: dict[str, Any], merged: dict[str, Any]) -> dict[str, Any]:
    """When overrides switch `method.name` or `modality.name`, drop the keys of the old method or modality (and of
    its mask or augment section) that the new one lacks and that only hold the old one's default, as a saved or
    dumped config does; a key set to another value still fails, naming the key and its owner."""
    for owner in UNION_SECTIONS:
        old, new = _selected(tree, owner), _selected(merged, owner)
        classes = UNION_SECTIONS[owner][0]
        if old == new or old not in classes or new not in classes:
            continue
        pairs = [(owner, classes[old], classes[new])]
        pairs += [(section, getattr(classes[old], attr), getattr(classes[new], attr))
                  for section, (o, attr) in DEPENDENT_SECTIONS.items() if o == owner]
        for section, old_cls, new_cls in pairs:
            values, before = merged.get(section), tree.get(section)
            if not isinstance(values, dict) or not isinstance(before, dict):
                continue
            defaults = old_cls.model_construct().model_dump(mode="json")
            for key in [k for k in values if k not in new_cls.model_fields and k in defaults]:
                if key in before and before[key] == values[key] == defaults[key]:
                    del values[key]
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (a local file or a URI), failing clearly on a missing file or a non-mapping document."""
    from distributed_ssl.util import storage

    fs, where = storage.resolve(str(path))
    try:
        text = storage.read_text(fs, where)
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {str(exc).splitlines()[0][:300]}") from None
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return tree


def resolve_config(tree: dict[str, Any], overrides: list[str] | dict[str, Any] | None = None,
                   source: str = "<dict>") -> SSLConfig:
    """Validate a raw config tree after applying overrides; credentials in any value are refused (they belong in
    the environment: see config/credentials.py)."""
    try:
        merged = _drop_defaults_of_replaced_variants(tree, apply_overrides(tree, overrides or []))
    except OverrideError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        cfg = SSLConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source, merged)) from None
    problems = credential_problems(cfg.model_dump(mode="json"))
    if problems:
        raise ConfigError("\n".join([f"invalid configuration ({source}):", *(f"  {p}" for p in problems)]))
    return cfg


def load_config(path: str | Path | None, overrides: list[str] | dict[str, Any] | None = None) -> SSLConfig:
    """Load a YAML config (None: defaults only) and apply dotted overrides."""
    tree = read_yaml(path) if path is not None else {}
    return resolve_config(tree, overrides, source=str(path) if path else "defaults")


def config_to_dict(cfg: SSLConfig) -> dict[str, Any]:
    """Plain JSON-compatible dict of a config."""
    return cfg.model_dump(mode="json")


def save_config(cfg: SSLConfig, path: str | Path) -> None:
    """Write the resolved config as YAML that `load_config` accepts back (to a local path or a URI)."""
    from distributed_ssl.util import storage
    from distributed_ssl.util.redaction import redact

    fs, where = storage.resolve(str(path))
    storage.write_text(fs, where, yaml.safe_dump(redact(config_to_dict(cfg)), sort_keys=False))

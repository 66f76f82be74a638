"""Load, validate and save configurations, with errors that name the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from distributed_ssl.config.credentials import credential_problems
from distributed_ssl.config.overrides import OverrideError, apply_overrides
from distributed_ssl.config.schema import SSLConfig


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file, the key path and the reason."""


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            reason = "unknown key"
        else:
            reason = item["msg"]
            if "input" in item and not isinstance(item["input"], dict):
                reason += f" (got {item['input']!r})"
        lines.append(f"  {path}: {reason}")
    return "\n".join(lines)


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
        merged = apply_overrides(tree, overrides or [])
    except OverrideError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        cfg = SSLConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None
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

"""Typed run configuration: YAML in, dotted overrides, validated at load."""

from distributed_ssl.config.loader import ConfigError, load_config, resolve_config, save_config
from distributed_ssl.config.schema import SSLConfig

__all__ = ["ConfigError", "SSLConfig", "load_config", "resolve_config", "save_config"]

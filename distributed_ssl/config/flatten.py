"""The flattened `section.key → value` view of a config, as MLflow params."""

from __future__ import annotations

from typing import Any

from distributed_ssl.config.overrides import flatten
from distributed_ssl.config.schema import SSLConfig


def flat_params(cfg: SSLConfig) -> dict[str, Any]:
    return flatten(cfg.model_dump(mode="json"))

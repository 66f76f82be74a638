"""Credentials never live in a config: they come from the environment.

A saved `config.yaml` is masked (tracking/redaction.py), so a run resumed, submitted or retrained from it would
authenticate with `***`. Refusing credentials at load keeps every copy of a config usable and secret-free:
MLflow reads MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD / MLFLOW_TRACKING_TOKEN, pyarrow and boto read
AWS_*, gcsfs reads GOOGLE_APPLICATION_CREDENTIALS.
"""

from __future__ import annotations

from typing import Any

from distributed_ssl.util.redaction import contains_secret, redact_text

_ENV_HINTS = {
    "http": "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)",
    "https": "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)",
    "s3": "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS",
    "gcs": "GOOGLE_APPLICATION_CREDENTIALS",
}


def _leaves(tree: Any, prefix: str = ""):
    """(dotted key, string value) for every string in a config tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _leaves(value, f"{prefix}[{i}]")
    elif isinstance(tree, str):
        yield prefix, tree


def credential_problems(tree: dict[str, Any]) -> list[str]:
    """One message per config value that carries credentials (URI user-info, a token/signature query parameter,
    `password=...`), naming the key, showing the value masked and the environment variables to use instead."""
    problems = []
    for key, value in _leaves(tree):
        if contains_secret(value):
            scheme = value.partition("://")[0].lower() if "://" in value else ""
            where = _ENV_HINTS.get(scheme, "the environment variables your storage or tracking client reads")
            problems.append(f"{key}={redact_text(value)}: credentials are not kept in configs (saved copies are "
                            f"masked, so a resumed or submitted run could not use them); remove them from the "
                            f"value and put them in the environment: {where}")
    return problems

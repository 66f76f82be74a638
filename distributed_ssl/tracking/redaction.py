"""Keep secrets out of everything a run writes: MLflow params and tags, saved configs, summaries, logs.

Credentials belong in the environment (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, AWS_* ...), which
MLflow and pyarrow read themselves; anything secret-looking that reaches a config is masked on the way out.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
SECRET_KEY = re.compile(r"(password|passwd|secret|token|api[_-]?key|access[_-]?key|credential|private[_-]?key)",
                        re.IGNORECASE)
URI_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<password>[^@/\s]+)@", re.IGNORECASE)
QUERY_SECRET = re.compile(r"(?P<key>[?&][^=&\s]*(?:token|secret|password|signature|key)[^=&\s]*=)[^&\s]+",
                          re.IGNORECASE)


def redact_text(text: str) -> str:
    """Mask passwords in URIs (`scheme://user:pw@host`) and secret-looking query parameters."""
    text = URI_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    return QUERY_SECRET.sub(lambda m: f"{m.group('key')}{MASK}", text)


def redact(value: Any, key: str = "") -> Any:
    """A copy of `value` (dicts and lists walked) with secret keys masked and secrets in strings removed."""
    if key and SECRET_KEY.search(key.rsplit(".", 1)[-1]):
        return MASK
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value

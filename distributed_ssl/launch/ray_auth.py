"""The bearer token a Ray cluster with token authentication expects on its dashboard / Jobs API.

Ray 2.60 turns token authentication on for a new local cluster (`ray.init()` writes `~/.ray/auth_token`; `ray start
--head` turns it on once a token exists or with `RAY_AUTH_MODE=token`).
Ray's own HTTP clients attach it only when *this* process runs in token mode (`RAY_AUTH_MODE=token`), which
a plain `dssl submit` does not, so it would get `401 Unauthorized`. We therefore look the token up the same
way Ray does and send it explicitly; a cluster without authentication ignores the header.
"""

from __future__ import annotations

import os
from pathlib import Path

TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_PATH = Path.home() / ".ray" / "auth_token"


def find_auth_token() -> str | None:
    """The token from `$RAY_AUTH_TOKEN`, else the file `$RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    path = Path(os.environ.get(TOKEN_PATH_ENV) or DEFAULT_TOKEN_PATH).expanduser()
    if path.is_file():
        token = path.read_text().strip()
        return token or None
    return None


def auth_headers() -> dict[str, str]:
    """`{"Authorization": "Bearer …"}` when a token is available, else `{}`."""
    token = find_auth_token()
    return {"Authorization": f"Bearer {token}"} if token else {}

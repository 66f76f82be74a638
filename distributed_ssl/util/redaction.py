"""Keep secrets out of everything a run writes or prints: MLflow params, tags and artifacts, saved configs,
summaries, run state, logs and error messages.

Credentials belong in the environment (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, AWS_* ...), which
MLflow and pyarrow read themselves; a config that carries them in a URI is refused at load (config/loader.py),
and anything secret-looking that still reaches a sink is masked on the way out by `redact` / `redact_text`.

URIs are found in free text (log lines, exception messages) by their `scheme://` and split by hand rather than by
a regex over the whole URI: a password may hold `/`, `:` or `@`, so the user-info runs up to the LAST `@` that
is followed by a host, and all of it is masked (`scheme://***@host`), user name included (tokens are often
passed as the user name: `https://ghp_TOKEN@github.com/x`).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any
from urllib.parse import unquote_plus

MASK = "***"
# Words of a key / parameter name that mark its value secret (matched per word: `blur_sigma` is not a `sig`).
_SECRET_SUBSTRINGS = ("token", "secret", "password", "passwd", "pwd", "credential", "apikey", "privatekey")
_SECRET_WORDS = {"key", "sig", "auth", "cookie", "session"}
_SECRET_PREFIXES = ("signature", "authoriz", "authent")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_URI_END = re.compile(r"[\s<>\"'`]|$")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.~%-]+)(:\d*)?(?=[/?#)\]},;:'\"]|$)")
_QUERY_PAIR = re.compile(r"(?P<name>[^=&;#]+)=(?P<value>[^&;#]*)")
# `name=value` / `"name": "value"` in free text, and HTTP authorization schemes (`Bearer x`, `Basic x`).
_ASSIGNMENT = re.compile(r"(?P<name>[\"']?[A-Za-z_][\w.-]*[\"']?)(?P<sep>\s*[=:]\s*)"
                         r"(?P<value>\"[^\"]*\"|'[^']*'|(?:(?:Bearer|Basic|Token|Digest)\s+)?[^\s&,;\"'}\])]+)")
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic|Digest)\s+(?P<cred>[A-Za-z0-9._~+/=-]{4,})")


def _words(name: str) -> list[str]:
    """`X-Amz-Signature` → [x, amz, signature]; `accessToken` → [access, token]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def is_secret_name(name: str) -> bool:
    """Does a dict key, query parameter or header name say its value is a credential?"""
    lowered = name.lower()
    if any(s in lowered for s in _SECRET_SUBSTRINGS):
        return True
    return any(w in _SECRET_WORDS or w.endswith("key") or w.startswith(_SECRET_PREFIXES) for w in _words(name))


def _mask_query(query: str) -> str:
    """`a=1&access_token=x` → `a=1&access_token=***`; names are percent-decoded first (`access%5Ftoken`)."""
    return _QUERY_PAIR.sub(lambda m: f"{m['name']}={MASK}" if is_secret_name(unquote_plus(m["name"])) else m[0],
                           query)


def _userinfo_end(rest: str) -> int:
    """Index of the `@` ending the user-info in `rest` (the URI after `scheme://`), or -1 when there is none.

    The last `@` followed by a host[:port] wins, so `u:pa/ss@host` and `u:p@ss@host` are masked whole.
    """
    for at in (i for i in range(len(rest) - 1, -1, -1) if rest[i] == "@"):
        if _HOST.match(rest, at + 1):
            return at
    return -1


def redact_uri(uri: str) -> str:
    """One URI (`scheme://...`, no surrounding text) with its user-info and secret query parameters masked."""
    head, sep, rest = uri.partition("://")
    if not sep:
        return uri
    at = _userinfo_end(rest)
    if at >= 0:
        rest = f"{MASK}@{rest[at + 1:]}"
    before, question, after = rest.partition("?")  # RFC 3986: the query runs from the first `?` to `#`
    query, hash_, fragment = after.partition("#")
    return f"{head}://{before}{question}{_mask_query(query)}{hash_}{fragment}"


def _redact_uris(text: str) -> str:
    out, pos = [], 0
    for match in _SCHEME.finditer(text):
        if match.start() < pos:
            continue  # inside the previous URI (e.g. `?redirect=http://...`): already handled
        end = _URI_END.search(text, match.end()).start()
        out += [text[pos:match.start()], redact_uri(text[match.start():end])]
        pos = end
    return "".join(out) + text[pos:]


def _redact_assignment(m: re.Match) -> str:
    return f"{m['name']}{m['sep']}{MASK}" if is_secret_name(m["name"].strip("\"'")) else m[0]


def redact_text(text: str) -> str:
    """Mask credentials in free text: URI user-info and secret query parameters, `token=...`-style assignments,
    `Authorization: Bearer ...` headers."""
    if not text:
        return text
    text = _redact_uris(text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m['scheme']} {MASK}", text)
    return _ASSIGNMENT.sub(_redact_assignment, text)


def contains_secret(text: str) -> bool:
    """True when `redact_text` would change `text`: it carries something that looks like a credential."""
    return redact_text(text) != text


def redact(value: Any, key: str = "") -> Any:
    """A copy of `value` (dicts, lists and tuples walked) with secret-named keys masked and strings redacted."""
    if key and is_secret_name(key.rsplit(".", 1)[-1]):
        return MASK
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactingFilter(logging.Filter):
    """Rewrites every record it sees (message, arguments, traceback) with `redact_text`; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


_FILTER = RedactingFilter()


def _redacting_excepthook(exc_type, exc, tb) -> None:
    import traceback

    sys.stderr.write(redact_text("".join(traceback.format_exception(exc_type, exc, tb))))


def install_log_redaction(excepthook: bool = True) -> None:
    """Mask secrets in every log line (and, with `excepthook`, every uncaught traceback) of this process.

    The filter goes on the `distributed_ssl` logger (its own records) and on every handler of the root logger
    (records of every logger propagate there: logger-level filters do not see children's records), so call it
    after logging is configured. Calling it again is harmless.
    """
    package = logging.getLogger("distributed_ssl")
    if _FILTER not in package.filters:
        package.addFilter(_FILTER)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    if excepthook:
        sys.excepthook = _redacting_excepthook

"""Secrets never travel back: scrub them from any text that leaves the process.

Two nets, applied together by `redact`:
- the configured secrets themselves (provider keys, server API keys, header credentials, JWT
  signing material, Azure AD tokens, Spark secrets), registered by the models and the server
  when they are built — `register_secret`;
- well-known key shapes, for secrets nobody registered (a key an upstream echoes back that is
  not ours, a token minted from ours): `sk-...`, `Bearer ...`, JWTs, Zhipu `{id}.{secret}` keys,
  Qianfan `bce-v3/...` keys, cloud AK ids, Google `AIza...` keys.

`ChatchatError` runs its message through `redact`, so every error that quotes an upstream is
clean wherever it goes (responses, SSE events, logs, reprs); `install_log_redaction` makes every
log record in the process pass through it too, whatever logger wrote it and at whatever level.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "***"
_MIN_SECRET_LENGTH = 8
"""Shorter values (test keys such as "k" or "secret", the "secret" half of "id.secret") would
mask ordinary words; no provider issues keys that short, and the key shapes still catch them."""

_KEY_SHAPES = re.compile(
    r"""
      (?P<prefixed>\b(?:sk|pk|rk|ak)-[A-Za-z0-9_\-]{6,})                      # sk-..., OpenAI-style
    | (?P<bearer>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/\-=:]{6,}              # Authorization values
    | (?P<jwt>\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*)   # JSON web tokens
    | (?P<zhipu>\b[0-9a-fA-F]{32}\.[A-Za-z0-9]{16}\b)                        # Zhipu {id}.{secret}
    | (?P<qianfan>\bbce-v3/[A-Za-z0-9\-]+/[A-Za-z0-9]+)                       # Qianfan bearer keys
    | (?P<ak>\b(?:LTAI|AKLT|AKID|AKIA)[A-Za-z0-9]{12,})                        # cloud access-key ids
    | (?P<google>\bAIza[0-9A-Za-z_\-]{35,})                                     # Google (Gemini) keys
    | (?P<named>\b[\w-]*(?:api[_-]?key|secret|token|password|authorization|signature)
        ["']?\s*[=:]\s*["']?(?:(?:Bearer|Basic)\s+)?)(?!(?:Bearer|Basic)\b)[^\s"',;&]{6,}            # key=value, "key": v
    """,
    re.IGNORECASE | re.VERBOSE,
)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
"""Registered secrets, longest first (so a key is masked whole before any part of it)."""


def register_secret(value: str | None) -> None:
    """Remember `value` (and its `:`/`.`-separated parts: `APIKey:APISecret`, `{id}.{secret}`)
    as a secret to mask wherever text leaves the process."""
    if not value:
        return
    parts = {value, *re.split(r"[:.]", value)}
    if value.lower().startswith(("bearer ", "basic ")):
        parts.add(value.split(None, 1)[1])
    new = {part for part in parts if len(part) >= _MIN_SECRET_LENGTH}
    global _secrets
    with _lock:
        if new.issubset(_secrets):
            return
        _secrets = tuple(sorted(new.union(_secrets), key=len, reverse=True))


def register_secrets(values: Iterable[str | None]) -> None:
    for value in values:
        register_secret(value)


_SECRET_NAMES = re.compile(
    r"(?:^|[_-])(?:api_?key|key|secret|token|password|authorization|credentials?|cookie)(?:$|[_-])",
    re.IGNORECASE,
)


def register_secrets_in(params: Any, *, secret: bool = False) -> None:
    """Register every string under a secret-looking name (`api_key`, `api_secret`,
    `azure_ad_token`, an `Authorization` header, ...) at any depth of a config's `params`;
    `secret=True` registers every string below."""
    if isinstance(params, dict):
        for name, value in params.items():
            register_secrets_in(value, secret=secret or bool(_SECRET_NAMES.search(str(name))))
    elif isinstance(params, (list, tuple)):
        for item in params:
            register_secrets_in(item, secret=secret)
    elif hasattr(params, "get_secret_value"):  # pydantic's SecretStr, whatever its name
        register_secret(params.get_secret_value())
    elif secret and isinstance(params, str):
        register_secret(params)


def register_model_secrets(model: Any) -> None:
    """Register the secrets among a pydantic model's fields (`SecretStr`s, secret-named headers)."""
    register_secrets_in(dict(model))


def redact(text: str) -> str:
    """`text` with every registered secret and every known key shape masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _KEY_SHAPES.sub(_mask_shape, text)


def _mask_shape(match: re.Match[str]) -> str:
    for keep in ("bearer", "named"):
        if match.group(keep):
            return match.group(keep) + MASK
    if match.group("prefixed"):
        return match.group("prefixed")[:3] + MASK
    return MASK


class _RedactingRecordFactory:
    """Wraps the process's log-record factory: each record's message, arguments and traceback
    are rendered and redacted when the record is made (only records that pass their logger's
    level are made at all)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return record
        redacted = redact(message)
        if redacted != message:  # else leave msg/args alone: some formatters read the args
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record


def install_log_redaction() -> None:
    """Make every log record of this process pass through `redact` (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingRecordFactory):
        logging.setLogRecordFactory(_RedactingRecordFactory(factory))

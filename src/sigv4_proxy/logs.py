"""Logging for sigv4-proxy: stderr only, text or JSON lines, secrets redacted before anything is written.

stdout belongs to the MCP protocol in stdio mode, so every log line goes to stderr. Redaction runs on the
final formatted line (message, arguments, structured fields and exception text alike), so no code path can leak by
formatting a header dict or an exception that quotes a request:

* ``Authorization`` header values (``AWS4-HMAC-SHA256 Credential=AKIA.../..., Signature=...``) keep the
  algorithm, the masked access key, the scope and the signed-header list; the signature is replaced;
* ``X-Amz-Security-Token`` / ``X-Amz-Signature`` / ``X-Amz-Credential`` values, in headers or query strings;
* ``Signature=<hex>`` anywhere; AWS access key ids are masked (``AKIA****MPLE``);
* the secret access key and session token of the credentials registered with :func:`register_credentials`,
  wherever they appear. Only the latest two sets are kept (the current credentials, and the previous ones
  for requests still in flight when they were refreshed): a long-running proxy refreshing every hour must
  not accumulate a week of secrets, nor pay for them on every registration and every line.
  :func:`register_secret` (one value) remains for other secrets and keeps its own latest four.

Text lines are redacted, then escaped for the terminal (:class:`TextFormatter`); in JSON lines every control
or invisible formatting character is a JSON escape (``\\u001b``, ``\\u202e``): same value, safe to show.

Module level imports stay cheap: only the standard library (and :mod:`sigv4_proxy.terminal`, which is).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol, TextIO

from sigv4_proxy.terminal import json_printable, printable

__all__ = [
    "LEVELS",
    "LOGGER_NAME",
    "JsonFormatter",
    "SecretRegistry",
    "TextFormatter",
    "get_logger",
    "redact",
    "register_credentials",
    "register_secret",
    "setup_logging",
]

LOGGER_NAME = "sigv4_proxy"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
LEVEL_ALIASES = {"warn": "warning", "err": "error", "trace": "debug"}

_MASK = "****"
_MIN_SECRET_LENGTH = 8  # shorter values would mask ordinary words

# Each pattern keeps its first group and masks the rest of the match.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Signature=<hex> in an Authorization header, X-Amz-Signature=<hex> in a presigned query string.
    (re.compile(r"(?i)((?:x-amz-)?signature[\"']?\s*[=:]\s*[\"']?)[0-9a-f]{16,}"), r"\1" + _MASK),
    # Security tokens: header (`X-Amz-Security-Token: ...`, JSON `"x-amz-security-token": "..."`) or query.
    (
        re.compile(r"(?i)(x-amz-security-token[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;)}\]]+"),
        r"\1" + _MASK,
    ),
    # Secret keys spelled out as settings: aws_secret_access_key = ..., "secret_access_key": "...".
    (
        re.compile(r"(?i)(secret[_-]?(?:access[_-]?)?key[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;)}\]]+"),
        r"\1" + _MASK,
    ),
    # Bearer / DSQL-style presigned tokens after `token=` in a query string or setting.
    (
        re.compile(r"(?i)((?:session[_-]?)?token[\"']?\s*[=:]\s*[\"']?)(?=[A-Za-z0-9/+=%]{40,})[^\s\"'&,;)}\]]+"),
        r"\1" + _MASK,
    ),
]
# AWS access key ids: AKIA/ASIA + 16 upper-case letters or digits -> AKIA****WXYZ.
_ACCESS_KEY = re.compile(r"\b((?:AKIA|ASIA|AROA|AIDA|ABIA|ACCA)[A-Z0-9]{12}([A-Z0-9]{4}))\b")


class CredentialSet(Protocol):
    """What :func:`register_credentials` needs: a :class:`~sigv4_proxy.Credentials` has it."""

    @property
    def access_key_id(self) -> str: ...

    @property
    def secret_access_key(self) -> str: ...

    @property
    def session_token(self) -> str | None: ...


class SecretRegistry:
    """The secret values masked in every log line, bounded.

    Credential sets are keyed by (access key id, secret, session token); the latest :attr:`MAX_SETS` are
    kept, re-registering one makes it the latest again, and the one registered before the oldest kept is
    forgotten — no reference to its secrets stays here. Single values (:meth:`register_secret`) are kept
    the same way, the latest :attr:`MAX_VALUES`. Masking is plain substring replacement, longest first (a
    token containing another secret is masked whole): no regex is compiled from secrets, so neither the
    cost of registering nor :mod:`re`'s pattern cache grows with them.
    """

    MAX_SETS = 2  # the current credentials and the previous ones
    MAX_VALUES = 4  # register_secret(secret) + register_secret(token) for two sets, by an older caller

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: OrderedDict[tuple[str, str, str | None], None] = OrderedDict()
        self._values: OrderedDict[str, None] = OrderedDict()
        self._ordered: tuple[str, ...] = ()  # what redaction masks, longest first; replaced, never mutated
        self._latest_set: tuple[str, str, str | None] | None = None
        self._latest_value: str | None = None

    def register_credentials(self, credentials: CredentialSet) -> None:
        key = (credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
        # Called before every signed request: the common case, already the latest, is one comparison (a
        # plain attribute read, safe without the lock).
        if key != self._latest_set:
            with self._lock:
                self._remember(self._sets, key, self.MAX_SETS)
                self._latest_set = key

    def register_secret(self, value: str | None) -> None:
        if value and len(value) >= _MIN_SECRET_LENGTH and value != self._latest_value:
            with self._lock:
                self._remember(self._values, value, self.MAX_VALUES)
                self._latest_value = value

    def _remember(self, store: OrderedDict[Any, None], key: Any, limit: int) -> None:
        """Make `key` the latest of `store`, forgetting the oldest beyond `limit` (the lock is held)."""
        if key in store:
            store.move_to_end(key)
            return
        store[key] = None
        while len(store) > limit:
            store.popitem(last=False)
        self._ordered = self._compute()

    def _compute(self) -> tuple[str, ...]:
        values = set(self._values)
        for _, secret, token in self._sets:
            values.update(v for v in (secret, token) if v and len(v) >= _MIN_SECRET_LENGTH)
        return tuple(sorted(values, key=len, reverse=True))

    def secrets(self) -> tuple[str, ...]:
        """Every value masked now (for tests and diagnostics: treat as secret)."""
        return self._ordered

    @property
    def credential_sets(self) -> int:
        return len(self._sets)

    def mask(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, _MASK)
        return text

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()
            self._values.clear()
            self._ordered = ()
            self._latest_set = self._latest_value = None


_registry = SecretRegistry()


def secret_registry() -> SecretRegistry:
    """The process's registry, the one :func:`redact` masks with."""
    return _registry


def register_credentials(credentials: CredentialSet) -> None:
    """Redact this credential set's secret access key and session token from every log line from now on.

    Register the credentials each time they are handed out (cheap when unchanged): only the latest two sets
    are remembered, so after a refresh the previous credentials stay masked (requests signed with them may
    still be logging) and the ones before are forgotten.
    """
    _registry.register_credentials(credentials)


def register_secret(value: str | None) -> None:
    """Redact ``value`` from every log line from now on (values under 8 characters are ignored).

    The latest four values are kept. For credentials prefer :func:`register_credentials`, which keeps whole
    sets (a caller registering secret and token separately gets the same two-set window from the four).
    """
    _registry.register_secret(value)


def redact(text: str) -> str:
    """``text`` with every known secret and secret-shaped value masked."""
    text = _registry.mask(text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return _ACCESS_KEY.sub(lambda m: m.group(1)[:4] + _MASK + m.group(2), text)


def _iso_time(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class TextFormatter(logging.Formatter):
    """``2025-01-01T12:00:00.000Z INFO  message key=value ...`` — the line ends with the message or fields.

    Log lines carry other people's text (a request target, an upstream error message, a token's fields), and
    they land on a terminal or in a log file read by one. So the line is redacted, then every control or
    invisible formatting character in it is written as an escape (:func:`sigv4_proxy.terminal.printable`):
    an ESC sequence is shown, not obeyed, and a line feed in the message is ``\\n``, so no input can forge a
    log line of its own. A traceback keeps its line breaks (only its other control characters are escaped).
    Redaction runs first, on the raw text: an escape glued to an access key (``\\x1bAKIA...``) would
    otherwise hide the word boundary the masking looks for.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_iso_time(record.created)} {record.levelname:<5} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        line = printable(redact(line))
        if record.exc_info:
            line += "\n" + printable(redact(self.formatException(record.exc_info)), layout=True)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` and any structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        # json.dumps escapes C0 controls; json_printable the rest it leaves raw (DEL, C1, bidi overrides).
        return json_printable(redact(json.dumps(entry, default=str, ensure_ascii=False)))


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


def get_logger(name: str | None = None) -> logging.Logger:
    """A logger under ``sigv4_proxy`` (``get_logger("mcp")`` -> ``sigv4_proxy.mcp``)."""
    return logging.getLogger(LOGGER_NAME if not name else f"{LOGGER_NAME}.{name}")


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> logging.Logger:
    """Send sigv4-proxy's logs to ``stream`` (default stderr) at ``level`` in ``fmt`` (text|json).

    Idempotent: calling it again replaces the handler. Other libraries' loggers are left alone, except
    that at debug level httpx's request lines (method, URL, status; never headers) are included.
    """
    logger = logging.getLogger(LOGGER_NAME)
    httpx_logger = logging.getLogger("httpx")
    for owner in (logger, httpx_logger):
        for handler in list(owner.handlers):
            if getattr(handler, "_sigv4_proxy", False):
                owner.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._sigv4_proxy = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    numeric = LEVELS[LEVEL_ALIASES.get(level, level)]
    logger.setLevel(numeric)
    logger.propagate = False
    if numeric <= logging.DEBUG:
        httpx_logger.addHandler(handler)
        httpx_logger.setLevel(logging.INFO)
    return logger

"""Logging for sigv4-proxy: stderr only, text or JSON lines, secrets redacted before anything is written.

stdout belongs to the MCP protocol in stdio mode, so every log line goes to stderr. Redaction runs on the
final formatted line (message, arguments, structured fields and exception text alike), so no code path can leak by
formatting a header dict or an exception that quotes a request:

* every secret-shaped value :func:`sigv4_proxy.redact.redact` masks (signatures, session tokens, ``Bearer``
  tokens, credentials documents' JSON/XML fields, access key ids as ``AKIA****MPLE``, URL userinfo: the one
  list, in that module), so the logger masks exactly what every other output masks;
* the secret access key and session token of the credentials registered with :func:`register_credentials`,
  wherever they appear, whatever their shape. Only the latest two sets are kept (the current credentials, and
  the previous ones for requests still in flight when they were refreshed): a long-running proxy refreshing
  every hour must not accumulate a week of secrets, nor pay for them on every registration and every line.
  :func:`register_secret` (one value) remains for other secrets and keeps its own latest four.

Text lines are redacted, then escaped for the terminal (:class:`TextFormatter`); in JSON lines every control
or invisible formatting character is a JSON escape (``\\u001b``, ``\\u202e``): same value, safe to show.

Module level imports stay cheap: only the standard library (and :mod:`sigv4_proxy.terminal` and
:mod:`sigv4_proxy.redact`, which are).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Protocol, TextIO, TypeVar

from sigv4_proxy.redact import MASK
from sigv4_proxy.redact import redact as redact_shapes
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

_MIN_SECRET_LENGTH = 8  # shorter values would mask ordinary words
_Key = TypeVar("_Key", bound=Hashable)  # a registry entry: a credential set or one value


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

    def _remember(self, store: OrderedDict[_Key, None], key: _Key, limit: int) -> None:
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
                text = text.replace(secret, MASK)
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
    """``text`` with every known secret (the registry) and every secret-shaped value
    (:func:`sigv4_proxy.redact.redact`) masked."""
    return redact_shapes(_registry.mask(text))


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
        entry: dict[str, object] = {
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


def _text_value(value: object) -> str:
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

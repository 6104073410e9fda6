"""Logging for sigv4-proxy: stderr only, text or JSON lines, secrets redacted before anything is written.

stdout belongs to the MCP protocol in stdio mode, so every log line goes to stderr. Redaction runs on the
final formatted line (message, arguments, structured fields and exception text alike), so no code path can leak by
formatting a header dict or an exception that quotes a request:

* ``Authorization`` header values (``AWS4-HMAC-SHA256 Credential=AKIA.../..., Signature=...``) keep the
  algorithm, the masked access key, the scope and the signed-header list; the signature is replaced;
* ``X-Amz-Security-Token`` / ``X-Amz-Signature`` / ``X-Amz-Credential`` values, in headers or query strings;
* ``Signature=<hex>`` anywhere; AWS access key ids are masked (``AKIA****MPLE``);
* every secret registered with :func:`register_secret` (the proxy registers the secret access key and
  session token of each set of credentials it signs with), wherever it appears.

Module level imports stay cheap: only the standard library.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import Any, TextIO

__all__ = [
    "LEVELS",
    "LOGGER_NAME",
    "JsonFormatter",
    "TextFormatter",
    "get_logger",
    "redact",
    "register_secret",
    "setup_logging",
]

LOGGER_NAME = "sigv4_proxy"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
LEVEL_ALIASES = {"warn": "warning", "err": "error", "trace": "debug"}

_MASK = "****"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None

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
    (re.compile(r"(?i)((?:session[_-]?)?token[\"']?\s*[=:]\s*[\"']?)(?=[A-Za-z0-9/+=%]{40,})[^\s\"'&,;)}\]]+"),
     r"\1" + _MASK),
]
# AWS access key ids: AKIA/ASIA + 16 upper-case letters or digits -> AKIA****WXYZ.
_ACCESS_KEY = re.compile(r"\b((?:AKIA|ASIA|AROA|AIDA|ABIA|ACCA)[A-Z0-9]{12}([A-Z0-9]{4}))\b")


def register_secret(value: str | None) -> None:
    """Redact ``value`` from every log line from now on (secret keys, session tokens, DSQL tokens)."""
    global _secret_pattern
    if not value or len(value) < 8:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first so that a token containing another secret is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """``text`` with every known secret and secret-shaped value masked."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(_MASK, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return _ACCESS_KEY.sub(lambda m: m.group(1)[:4] + _MASK + m.group(2), text)


def _iso_time(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class TextFormatter(logging.Formatter):
    """``2025-01-01T12:00:00.000Z INFO  message key=value ...`` — the line ends with the message or fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_iso_time(record.created)} {record.levelname:<5} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


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
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


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

"""``--warm``: the last successful ``initialize`` answer per target, cached on disk (standard library only).

Backends that cold-start (Bedrock AgentCore runtimes, Lambda behind API Gateway) can take longer to answer
``initialize`` than an MCP client waits. With ``--warm`` the bridge answers the client's ``initialize`` at
once from this cache and completes the real one behind it; later requests wait for the real session.

One small JSON file per (target URL, requested protocol version) under the user cache directory::

    <cache dir>/sigv4-proxy/warm/<sha256 of target URL and version, 32 hex>.json
    {"target": "https://host/path", "protocolVersion": "2025-06-18", "saved": "2025-06-01T09:00:00Z",
     "result": {...the server's initialize result...}}

The file holds what the server says about itself (name, version, capabilities, instructions) and never
credentials; the query string and user info of the target URL are left out of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sigv4_proxy.redact import display_url

__all__ = ["SAVED_FORMAT", "WarmCache", "WarmEntry", "parse_saved", "requested_version", "user_cache_dir"]

APP_DIR = "sigv4-proxy"
CACHE_DIR_ENV = "SIGV4_PROXY_CACHE_DIR"
MAX_ENTRY_BYTES = 1 << 20  # an initialize result is a few KB; anything far larger is not one
SAVED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # an entry's "saved" time, UTC


def user_cache_dir(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """This tool's cache directory: ``$SIGV4_PROXY_CACHE_DIR``, else the platform's user cache directory
    (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on
    Windows) + ``sigv4-proxy``."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_DIR_ENV):
        return Path(env[CACHE_DIR_ENV])
    system = platform or sys.platform
    home = Path(env.get("HOME") or Path.home())
    if system == "darwin":
        return home / "Library" / "Caches" / APP_DIR
    if system.startswith("win"):
        base = env.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / APP_DIR / "Cache"
    base = env.get("XDG_CACHE_HOME") or str(home / ".cache")
    return Path(base) / APP_DIR


def requested_version(initialize: bytes | bytearray) -> str | None:
    """The ``protocolVersion`` a client's ``initialize`` request asks for (None when it names none)."""
    try:
        params = json.loads(bytes(initialize)).get("params")
    except (ValueError, AttributeError):
        return None
    version = params.get("protocolVersion") if isinstance(params, dict) else None
    return version if isinstance(version, str) else None


class WarmEntry:
    """One cached answer: the raw ``result`` JSON and when it was saved."""

    def __init__(self, result: bytes, saved: str) -> None:
        self.result = result
        self.saved = saved

    def answer(self, message_id: Any) -> bytes:
        """A JSON-RPC response carrying the cached result under the client's request id."""
        head = json.dumps({"jsonrpc": "2.0", "id": message_id}, separators=(",", ":"))[:-1]
        return head.encode() + b',"result":' + self.result + b"}"


class WarmCache:
    """The cache file for one target URL."""

    def __init__(self, directory: Path, target_url: str) -> None:
        self.directory = directory / "warm"
        self.target = display_url(target_url)
        self._target_url = target_url

    def path(self, protocol_version: str | None) -> Path:
        digest = hashlib.sha256(f"{self._target_url}\n{protocol_version or ''}".encode()).hexdigest()[:32]
        return self.directory / f"{digest}.json"

    def load(self, protocol_version: str | None) -> WarmEntry | None:
        """The cached answer, or None (no file, an unreadable or foreign one: a cache miss, never an error)."""
        try:
            with self.path(protocol_version).open("rb") as file:
                data = json.loads(file.read(MAX_ENTRY_BYTES + 1))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("protocolVersion") != protocol_version:
            return None
        result = data.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("protocolVersion"), str):
            return None
        return WarmEntry(json.dumps(result, separators=(",", ":")).encode(), str(data.get("saved", "?")))

    def save(self, protocol_version: str | None, result: Any, now: datetime | None = None) -> Path | None:
        """Store a successful initialize ``result`` (atomically, owner-readable only). None when it could not be
        written (a read-only home, a full disk): the cache is an optimisation, never a reason to fail."""
        moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        entry = {
            "target": self.target,
            "protocolVersion": protocol_version,
            "saved": moment.strftime(SAVED_FORMAT),
            "result": result,
        }
        path = self.path(protocol_version)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".warm-", suffix=".json")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    json.dump(entry, file, separators=(",", ":"))
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except (OSError, TypeError, ValueError):
            return None
        return path


def parse_saved(text: str) -> datetime | None:
    """An entry's ``saved`` time, or None when it is not one this module wrote."""
    try:
        return datetime.strptime(text, SAVED_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None

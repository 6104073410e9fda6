"""What the bridge remembers about the MCP session, and the requests it still owes an answer.

:class:`SessionState` holds the session id and negotiated protocol version from ``initialize`` (and the
client's original ``initialize`` message, so a forgotten session can be re-established later), plus a gate
that holds other messages back while an ``initialize`` is in flight: they need its session id.

:class:`PendingRequests` is the ledger behind "exactly one response per request": every request read from
stdin is entered; the first answer (the server's, or an error the bridge makes) resolves it; anything
later for the same id is dropped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from sigv4_proxy.mcp.jsonrpc import Envelope

__all__ = ["Pending", "PendingRequests", "SessionState"]


class SessionState:
    """Session id, negotiated protocol version, and the initialize gate.

    ``epoch`` counts the sessions established so far (the client's own ``initialize`` and every re-initialize
    after the server forgot a session): a request that failed in epoch N needs a new session only if the
    epoch is still N. ``needs_initialize`` is set when the real ``initialize`` behind a warm start failed:
    the next request re-runs it first.
    """

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.initialize_message: bytes | None = None  # the client's own initialize request, verbatim
        self.initialized_notification: bytes | None = None
        self.modern = False  # the last request used the 2026 per-request envelope
        self.epoch = 0
        self.needs_initialize = False
        self._initializing = 0
        self._ready = asyncio.Event()
        self._ready.set()

    def begin_initialize(self, message: Envelope) -> None:
        """An initialize request is about to be sent: hold every other message until it is answered."""
        self.initialize_message = bytes(message.raw)
        self.session_id = None
        self.protocol_version = None
        self._initializing += 1
        self._ready.clear()

    def hold(self) -> None:
        """Hold every message that waits on the gate (a re-initialize is running); :meth:`end_initialize` ends it."""
        self._initializing += 1
        self._ready.clear()

    def end_initialize(self) -> None:
        self._initializing = max(0, self._initializing - 1)
        if self._initializing == 0:
            self._ready.set()

    async def wait_ready(self) -> None:
        if not self._ready.is_set():
            await self._ready.wait()

    def describe(self) -> str:
        parts = []
        if self.session_id:
            parts.append(f"session {self.session_id}")
        if self.protocol_version:
            parts.append(f"protocol {self.protocol_version}")
        return ", ".join(parts) or "no session"


@dataclass(slots=True)
class Pending:
    """A request the client is waiting on."""

    id: Any
    key: str
    method: str
    modern: bool
    started: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None
    cancelled: bool = False  # the client sent notifications/cancelled for it


class PendingRequests:
    """Requests in flight, keyed by their id's canonical JSON (``1`` and ``"1"`` differ)."""

    def __init__(self) -> None:
        self._by_key: dict[str, Pending] = {}

    def add(self, request: Envelope) -> Pending | None:
        """Enter a request; None when a request with the same id is still in flight."""
        key = request.key
        if key in self._by_key:
            return None
        pending = Pending(
            id=request.id,
            key=key,
            method=request.method or "",
            modern=request.protocol_version is not None,
        )
        self._by_key[key] = pending
        return pending

    def get(self, key: str) -> Pending | None:
        return self._by_key.get(key)

    def resolve(self, key: str) -> Pending | None:
        """Mark the request answered. Returns it the first time, None afterwards (or for unknown ids)."""
        return self._by_key.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    def __len__(self) -> int:
        return len(self._by_key)

    def all(self) -> list[Pending]:
        return list(self._by_key.values())

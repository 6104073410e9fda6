"""What the bridge remembers about the MCP session, and the requests it still owes an answer.

:class:`SessionState` holds the session id and negotiated protocol version from ``initialize`` (and the
client's original ``initialize`` message, so a forgotten session can be re-established later), plus a gate
that holds other messages back while an ``initialize`` is in flight: they need its session id.

It changes only through its named transitions (the events of a session's life, as h11's ``_state.py`` has
them for a connection); its fields are read-only properties, and a transition that makes no sense in the
current state raises :class:`SessionStateError` instead of corrupting the state::

    client_message(m)        every client message: its wire era; remembers ``notifications/initialized``
    initialize_started(m)    the client's own initialize is sent: gate closed, old session forgotten
    reinitialize_started()   the server forgot the session: gate closed, session id forgotten
    assigned(session_id)     the initialize answer named the session (Mcp-Session-Id, legacy endpoint)
    learned_version(v)       the initialize answer named the protocol version
    established()            the initialize went through: a new epoch
    warm_failed()            the real initialize behind a warm start failed: the next request re-runs it
    initialize_finished()    an initialize (or re-initialize) ended, any way (even cancelled before it ran):
                             the gate opens when it was the last

The transitions that belong to an initialize (assigned, learned_version, established, warm_failed) are legal
only while one is in flight; a re-initialize needs the client's initialize to repeat.

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

__all__ = ["Pending", "PendingRequests", "SessionState", "SessionStateError"]


class SessionStateError(RuntimeError):
    """A transition the session's current state does not allow: a bug in the bridge, never the client's fault."""


class SessionState:
    """Session id, negotiated protocol version, and the initialize gate.

    ``epoch`` counts the sessions established so far (the client's own ``initialize`` and every re-initialize
    after the server forgot a session): a request that failed in epoch N needs a new session only if the
    epoch is still N. ``needs_initialize`` is set when the real ``initialize`` behind a warm start failed:
    the next request re-runs it first.
    """

    def __init__(self) -> None:
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        self._initialize_message: bytes | None = None  # the client's own initialize request, verbatim
        self._initialized_notification: bytes | None = None
        self._modern = False  # the last request used the 2026 per-request envelope
        self._epoch = 0
        self._needs_initialize = False
        self._initializing = 0  # initializes in flight (the client's own, and re-initializes)
        self._ready = asyncio.Event()
        self._ready.set()

    # -- what the rest of the bridge reads ------------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def protocol_version(self) -> str | None:
        return self._protocol_version

    @property
    def initialize_message(self) -> bytes | None:
        return self._initialize_message

    @property
    def initialized_notification(self) -> bytes | None:
        return self._initialized_notification

    @property
    def modern(self) -> bool:
        return self._modern

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def needs_initialize(self) -> bool:
        return self._needs_initialize

    @property
    def initializing(self) -> bool:
        """An initialize is in flight: the gate is closed."""
        return self._initializing > 0

    # -- transitions ----------------------------------------------------------------------------------------

    def client_message(self, message: Envelope) -> None:
        """A client message is about to go upstream: note its wire era (a request without the 2026 envelope
        ends the modern era; a notification never does), and keep ``notifications/initialized`` for a
        re-initialize to repeat."""
        if message.kind == "notification" and message.method == "notifications/initialized":
            self._initialized_notification = bytes(message.raw)
        if message.protocol_version is not None:
            self._modern = True
        elif message.kind == "request":
            self._modern = False

    def initialize_started(self, message: Envelope) -> None:
        """The client's own initialize request is about to be sent: hold every other message until it is
        answered; the session it replaces is forgotten."""
        if message.kind != "request" or message.method != "initialize":
            raise SessionStateError(f"initialize_started() with a {message.kind} {message.method!r}")
        self._initialize_message = bytes(message.raw)
        self._session_id = None
        self._protocol_version = None
        self._close_gate()

    def reinitialize_started(self) -> None:
        """The server forgot the session: hold every message that waits on the gate while the client's own
        initialize is repeated; the forgotten session id is not sent again."""
        if self._initialize_message is None:
            raise SessionStateError("reinitialize_started() before the client sent any initialize")
        self._session_id = None
        self._close_gate()

    def assigned(self, session_id: str | None) -> None:
        """The initialize answer named the session (``Mcp-Session-Id``; a legacy endpoint's ``session_id``)."""
        self._require_initializing("assigned")
        self._session_id = session_id

    def learned_version(self, version: str) -> None:
        """The initialize answer named the negotiated protocol version."""
        self._require_initializing("learned_version")
        self._protocol_version = version

    def established(self) -> None:
        """The initialize went through: a new session epoch begins, and no re-initialize is owed any more."""
        self._require_initializing("established")
        self._epoch += 1
        self._needs_initialize = False

    def warm_failed(self) -> None:
        """The real initialize behind a warm start failed: the next request re-runs it before it is sent."""
        self._require_initializing("warm_failed")
        self._needs_initialize = True

    def initialize_finished(self) -> None:
        """An initialize (or re-initialize) ended, successfully or not: the gate opens when it was the last."""
        self._require_initializing("initialize_finished")
        self._initializing -= 1
        if self._initializing == 0:
            self._ready.set()

    # -- the gate -------------------------------------------------------------------------------------------

    async def wait_ready(self) -> None:
        if not self._ready.is_set():
            await self._ready.wait()

    def describe(self) -> str:
        parts = []
        if self._session_id:
            parts.append(f"session {self._session_id}")
        if self._protocol_version:
            parts.append(f"protocol {self._protocol_version}")
        return ", ".join(parts) or "no session"

    def _close_gate(self) -> None:
        self._initializing += 1
        self._ready.clear()

    def _require_initializing(self, transition: str) -> None:
        if self._initializing == 0:
            raise SessionStateError(f"{transition}() while no initialize is in flight")


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

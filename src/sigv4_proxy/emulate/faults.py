"""Fault injection for the emulator, as plain data and pure decisions (sans-IO, thread-safe).

A :class:`FaultPlan` is an ordered list of rules. Each rule has a :class:`Match` (which requests it applies
to), an action, and how many more requests it applies to. For every request that passed signature
verification, the front asks :meth:`FaultPlan.take` which action applies; the first matching rule with
uses left wins and loses one use. Requests that fail verification never consume a rule, so a test's faults
hit exactly the signed requests it aims at.

Actions:

- :class:`Respond` — answer with this status, headers and body instead of forwarding: the MCP server never
  sees the request (429 + Retry-After, 424, 502/503/504, an empty 200, a 404 "session not found", ...).
- :class:`Drop` — abort the TCP connection (no clean close). ``forward=False``: before forwarding, so the MCP
  server never sees the request. ``after_events=N`` (N >= 1): the response is cut right after its N-th
  complete SSE event (the "reset mid-stream" case). ``after_events=0`` (default): the server handles the
  request completely but its response is lost: nothing of it is sent, the connection is reset when it ends
  (the request *was* executed; use N >= 1 for streams that never end, such as the GET stream). A JSON
  response has no events to cut after: with any N it is lost whole, as with 0.
- :class:`Delay` — wait ``seconds`` before forwarding (the server sees the request late).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RequestInfo:
    """What fault matching and the request log know about one HTTP request (never credentials)."""

    method: str
    path: str
    rpc_methods: tuple[str, ...] = ()
    rpc_ids: tuple[str | int, ...] = ()
    tool_names: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """`tools/call echo`, `initialize`, `2 messages`, or `` for a body that is not JSON-RPC."""
        if not self.rpc_methods:
            return ""
        if len(self.rpc_methods) > 1:
            return f"batch of {len(self.rpc_methods)}: " + ", ".join(self.rpc_methods)
        method = self.rpc_methods[0]
        return f"{method} {self.tool_names[0]}" if self.tool_names else method


def describe_request(method: str, path: str, body: bytes, *, max_parse_bytes: int = 1 << 20) -> RequestInfo:
    """Pull the JSON-RPC methods, ids and tool names out of a request body, tolerating anything."""
    if not body or len(body) > max_parse_bytes or body.lstrip()[:1] not in (b"{", b"["):
        return RequestInfo(method, path)
    try:
        parsed = json.loads(body)
    except ValueError:
        return RequestInfo(method, path)
    messages = parsed if isinstance(parsed, list) else [parsed]
    methods: list[str] = []
    ids: list[str | int] = []
    tools: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        rpc_method = message.get("method")
        if isinstance(rpc_method, str):
            methods.append(rpc_method)
        request_id = message.get("id")
        if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
            ids.append(request_id)
        params = message.get("params")
        if rpc_method == "tools/call" and isinstance(params, dict) and isinstance(params.get("name"), str):
            tools.append(params["name"])
    return RequestInfo(method, path, tuple(methods), tuple(ids), tuple(tools))


@dataclass(frozen=True)
class Match:
    """Which requests a rule applies to; every field left as None matches anything.

    ``rpc_method`` matches when any JSON-RPC message in the body has that method (``tools/call``,
    ``initialize``, ``notifications/initialized``, ...); ``tool`` when a ``tools/call`` names that tool.
    ``path`` is compared with the request path without its query string.
    """

    http_method: str | None = None
    path: str | None = None
    rpc_method: str | None = None
    tool: str | None = None

    def matches(self, request: RequestInfo) -> bool:
        if self.http_method is not None and request.method.upper() != self.http_method.upper():
            return False
        if self.path is not None and request.path != self.path:
            return False
        if self.rpc_method is not None and self.rpc_method not in request.rpc_methods:
            return False
        return self.tool is None or self.tool in request.tool_names


@dataclass(frozen=True)
class Respond:
    """Answer with this response; the request is not forwarded."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @property
    def label(self) -> str:
        return f"respond {self.status}" + (" (empty body)" if not self.body else "")


@dataclass(frozen=True)
class Drop:
    """Abort the connection: before forwarding (``forward=False``), after ``after_events`` SSE events of the
    response, or (``after_events=0``) once the server has answered in full, sending none of the answer."""

    forward: bool = True
    after_events: int = 0

    @property
    def label(self) -> str:
        if not self.forward:
            return "drop before forwarding"
        if self.after_events == 0:
            return "drop the response"
        return f"drop after {self.after_events} SSE event(s)"


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before forwarding."""

    seconds: float

    @property
    def label(self) -> str:
        return f"delay {self.seconds:g}s"


Action = Respond | Drop | Delay


@dataclass
class FaultRule:
    """One rule of a :class:`FaultPlan`; ``remaining`` counts down as requests consume it."""

    action: Action
    match: Match = field(default_factory=Match)
    remaining: int = 1
    applied: int = 0


class FaultPlan:
    """The ordered rules the front consults for every verified request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, action: Action, *, times: int = 1, match: Match | None = None) -> FaultRule:
        if times < 1:
            raise ValueError("times must be at least 1")
        rule = FaultRule(action, match or Match(), times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def take(self, request: RequestInfo) -> Action | None:
        """The action for this request, consuming one use of the first matching rule (None: no fault)."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and rule.match.matches(request):
                    rule.remaining -= 1
                    rule.applied += 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule.action
        return None

    def pending(self) -> list[FaultRule]:
        """Rules with uses left (a test can assert that its faults were all consumed)."""
        with self._lock:
            return [rule for rule in self._rules if rule.remaining > 0]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()


def aws_error(
    status: int, error_type: str | None, message: str, headers: Mapping[str, str] | Iterable[tuple[str, str]] = ()
) -> Respond:
    """An API Gateway-shaped error: JSON ``{"message": ...}`` and, when given, ``x-amzn-ErrorType``."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    pairs.append(("content-type", "application/json"))
    if error_type:
        pairs.append(("x-amzn-ErrorType", error_type))
    return Respond(status, tuple(pairs), json.dumps({"message": message}).encode())


_LF, _CR = 0x0A, 0x0D


class SseEventCounter:
    """Counts complete SSE events (terminated by a blank line: LF LF, CRLF CRLF, or CR CR) across chunks.

    ``cut(chunk, limit)`` returns how many bytes of ``chunk`` to send so that exactly ``limit`` events have
    been completed, or None when the limit is not reached within this chunk.
    """

    def __init__(self) -> None:
        self.events = 0
        self._previous_newline = False  # the last line ending seen ended an (empty or not) line
        self._pending_cr = False

    def cut(self, chunk: bytes, limit: int) -> int | None:
        if self.events >= limit:
            if self._pending_cr and chunk[:1] == b"\n":  # the LF of the CRLF that completed the last event
                self._pending_cr = False
                return 1
            return 0
        for index, byte in enumerate(chunk):
            if byte == _LF and self._pending_cr:  # the LF of a CRLF: the CR already ended the line
                self._pending_cr = False
                continue
            self._pending_cr = byte == _CR
            if byte not in (_LF, _CR):
                self._previous_newline = False
                continue
            if not self._previous_newline:
                self._previous_newline = True
                continue
            self.events += 1
            self._previous_newline = False
            if self.events < limit:
                continue
            if byte == _LF:
                return index + 1
            if index + 1 == len(chunk):
                return None  # a CR at the end of the chunk: its LF, if any, comes with the next chunk
            self._pending_cr = False
            return index + 2 if chunk[index + 1] == _LF else index + 1
        return None

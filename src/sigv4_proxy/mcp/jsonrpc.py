"""Just enough JSON-RPC to route messages without re-serialising them (sans-IO, standard library only).

The bridge forwards every message as the exact bytes it received. It reads only what routing needs: the
kind of message, its ``id``, its ``method``, and a few well-known parameters (tool name, resource URI,
the 2026 per-request protocol version). :func:`peek` finds those with a small scanner over the raw bytes,
so a 50 MB tool result is never turned into Python objects (that would triple the memory it needs);
values are decoded only for the few members read.

:func:`classify_line` is stdin's gate: it turns each line into an :class:`Envelope` or a
:class:`Rejection` carrying the JSON-RPC error (``-32700`` for invalid JSON, ``-32600`` for JSON that is
not a JSON-RPC message) the client must get instead.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_REQUEST",
    "PARSE_ERROR",
    "UPSTREAM_ERROR",
    "Envelope",
    "Kind",
    "MessageKind",
    "Rejection",
    "ScanError",
    "classify_line",
    "error_line",
    "id_key",
    "member_spans",
    "peek",
    "prefix_members",
    "truncated_kind",
]

# What a message is: one of JSON-RPC's three kinds, or a batch of them (a message's first bytes can tell the
# three apart, never a batch: :func:`truncated_kind`).
Kind = Literal["request", "notification", "response", "batch"]
MessageKind = Literal["request", "notification", "response"]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603
# Implementation-defined server error: the upstream failed or answered something unusable.
UPSTREAM_ERROR = -32000

# Messages up to this size are validated with the C JSON parser before they are forwarded; larger ones
# are checked structurally by the scanner (the upstream rejects the rest with its own parse error).
FULL_VALIDATION_LIMIT = 4 * 1024 * 1024

_WS = b" \t\r\n"
_STRUCTURAL = re.compile(rb'["{}\[\]]')
_SCALAR_END = re.compile(rb"[,}\]\s]")


class ScanError(ValueError):
    """The bytes are not a well-formed JSON object at the top level."""


# --- the scanner ----------------------------------------------------------------------------------------


def _skip_ws(buf: bytes | bytearray, pos: int, end: int) -> int:
    while pos < end and buf[pos] in _WS:
        pos += 1
    return pos


def _string_end(buf: bytes | bytearray, pos: int, end: int) -> int:
    """Index just past the string whose opening quote is at ``pos``."""
    search = pos + 1
    while True:
        close = buf.find(b'"', search, end)
        if close < 0:
            raise ScanError("unterminated string")
        backslashes = 0
        back = close - 1
        while back > pos and buf[back] == 0x5C:
            backslashes += 1
            back -= 1
        if backslashes % 2 == 0:
            return close + 1
        search = close + 1


def _value_end(buf: bytes | bytearray, pos: int, end: int) -> int:
    """Index just past the JSON value starting at ``pos`` (no leading whitespace)."""
    if pos >= end:
        raise ScanError("missing value")
    first = buf[pos]
    if first == 0x22:  # "
        return _string_end(buf, pos, end)
    if first in (0x7B, 0x5B):  # { [
        stack = [first]
        search = pos + 1
        while stack:
            match = _STRUCTURAL.search(buf, search, end)
            if match is None:
                raise ScanError("unbalanced brackets")
            char = buf[match.start()]
            if char == 0x22:
                search = _string_end(buf, match.start(), end)
                continue
            if char in (0x7B, 0x5B):
                stack.append(char)
            else:
                opener = stack.pop()
                if (opener == 0x7B) != (char == 0x7D):
                    raise ScanError("mismatched brackets")
            search = match.start() + 1
        return search
    match = _SCALAR_END.search(buf, pos, end)
    stop = match.start() if match else end
    if stop == pos:
        raise ScanError("missing value")
    return stop


def member_spans(buf: bytes | bytearray, start: int = 0, end: int | None = None) -> dict[str, tuple[int, int]]:
    """The members of the JSON object in ``buf[start:end]``: name -> (value start, value end).

    Only the top level is parsed; nested values are skipped over. Raises ScanError when the bytes are
    not exactly one object (surrounding whitespace allowed). A repeated name keeps its last value, as
    JSON parsers do.
    """
    stop = len(buf) if end is None else end
    members, after = _object_members(buf, _skip_ws(buf, start, stop), stop)
    if _skip_ws(buf, after, stop) != stop:
        raise ScanError("trailing data after the object")
    return members


def _object_members(buf: bytes | bytearray, pos: int, stop: int) -> tuple[dict[str, tuple[int, int]], int]:
    if pos >= stop or buf[pos] != 0x7B:
        raise ScanError("not a JSON object")
    members: dict[str, tuple[int, int]] = {}
    pos = _skip_ws(buf, pos + 1, stop)
    if pos < stop and buf[pos] == 0x7D:
        return members, pos + 1
    while True:
        if pos >= stop or buf[pos] != 0x22:
            raise ScanError("expected a member name")
        name_end = _string_end(buf, pos, stop)
        try:
            name = json.loads(bytes(buf[pos:name_end]))
        except ValueError as exc:
            raise ScanError("bad member name") from exc
        pos = _skip_ws(buf, name_end, stop)
        if pos >= stop or buf[pos] != 0x3A:  # :
            raise ScanError("expected ':'")
        value_start = _skip_ws(buf, pos + 1, stop)
        value_end = _value_end(buf, value_start, stop)
        members[name] = (value_start, value_end)
        pos = _skip_ws(buf, value_end, stop)
        if pos < stop and buf[pos] == 0x2C:  # ,
            pos = _skip_ws(buf, pos + 1, stop)
            continue
        if pos < stop and buf[pos] == 0x7D:  # }
            return members, pos + 1
        raise ScanError("expected ',' or '}'")


def prefix_members(buf: bytes | bytearray) -> dict[str, tuple[int, int]]:
    """The top-level members of a truncated object (the start of an over-size line).

    A member whose value runs past the end of ``buf`` is included with an end of -1.
    """
    members: dict[str, tuple[int, int]] = {}
    stop = len(buf)
    pos = _skip_ws(buf, 0, stop)
    if pos >= stop or buf[pos] != 0x7B:
        return members
    pos = _skip_ws(buf, pos + 1, stop)
    try:
        while pos < stop and buf[pos] == 0x22:
            name_end = _string_end(buf, pos, stop)
            name = json.loads(bytes(buf[pos:name_end]))
            pos = _skip_ws(buf, name_end, stop)
            if pos >= stop or buf[pos] != 0x3A:
                break
            value_start = _skip_ws(buf, pos + 1, stop)
            members[name] = (value_start, -1)
            value_end = _value_end(buf, value_start, stop)
            if value_end >= stop:
                break  # the value may continue past the prefix
            members[name] = (value_start, value_end)
            pos = _skip_ws(buf, value_end, stop)
            if pos >= stop or buf[pos] != 0x2C:
                break
            pos = _skip_ws(buf, pos + 1, stop)
    except ValueError:
        pass
    return members


def truncated_kind(prefix: bytes | bytearray) -> tuple[MessageKind | None, Any]:
    """(kind, id) of a message known only by its first bytes: "request", "notification", "response" or None.

    A message whose ``method`` lies beyond the prefix but whose ``id`` does not is taken for a request
    unless ``result`` / ``error`` show it is a response: answering it is what keeps the client from waiting.
    """
    started = prefix_members(prefix)
    members = {name: span for name, span in started.items() if span[1] >= 0}
    has_id = "id" in members
    message_id = _decode_id(prefix, members) if has_id else None
    if "result" in started or "error" in started:
        return "response", message_id
    if "method" in started:
        return ("request" if has_id else "notification"), message_id
    if has_id and message_id is not None:
        return "request", message_id
    return None, None


def _decode(buf: bytes | bytearray, span: tuple[int, int]) -> Any:
    return json.loads(bytes(buf[span[0] : span[1]]))


def _decode_small(buf: bytes | bytearray, span: tuple[int, int] | None, limit: int = 65536) -> Any:
    """The JSON value at ``span`` when it is small enough to be worth decoding, else None."""
    if span is None or span[1] - span[0] > limit:
        return None
    try:
        return _decode(buf, span)
    except ValueError:
        return None


def _sub_spans(buf: bytes | bytearray, span: tuple[int, int] | None) -> dict[str, tuple[int, int]]:
    if span is None or buf[span[0]] != 0x7B:
        return {}
    try:
        return member_spans(buf, span[0], span[1])
    except ScanError:
        return {}


# --- envelopes ------------------------------------------------------------------------------------------


def id_key(value: Any) -> str:
    """A routing key for a JSON-RPC id that keeps ``1`` and ``"1"`` apart (its canonical JSON text)."""
    return json.dumps(value, separators=(",", ":"))


@dataclass(slots=True)
class Envelope:
    """What routing knows about one message. ``raw`` is the message exactly as received."""

    raw: bytes | bytearray
    kind: Kind
    id: Any = None
    method: str | None = None
    is_error: bool = False
    # Request/notification parameters the transport mirrors into headers (2026 wire) or reads.
    name: str | None = None  # tools/call, prompts/get -> params.name; resources/read -> params.uri
    protocol_version: str | None = None  # params._meta["io.modelcontextprotocol/protocolVersion"]
    cancelled_id: Any = None  # notifications/cancelled -> params.requestId
    params_span: tuple[int, int] | None = None
    result_span: tuple[int, int] | None = None
    members: list[Envelope] = field(default_factory=list)  # batch elements
    span: tuple[int, int] | None = None  # a batch element's bytes within ``raw``

    @property
    def key(self) -> str:
        return id_key(self.id)

    @property
    def is_request(self) -> bool:
        return self.kind == "request"

    def requests(self) -> list[Envelope]:
        """The requests this message carries (itself, or a batch's request members)."""
        if self.kind == "batch":
            return [member for member in self.members if member.kind == "request"]
        return [self] if self.kind == "request" else []

    def response_keys(self) -> list[str]:
        """The ids of the responses this message carries (the client answering server requests)."""
        if self.kind == "response":
            return [self.key]
        if self.kind == "batch":
            return [member.key for member in self.members if member.kind == "response"]
        return []

    def rebind(self, raw: bytes) -> None:
        """Point this envelope (and a batch's members) at ``raw``, an identical copy of the bytes."""
        self.raw = raw
        for member in self.members:
            member.raw = raw

    def arguments(self) -> Any:
        """``params.arguments`` decoded (tools/call), or None."""
        if self.params_span is None:
            return None
        span = _sub_spans(self.raw, self.params_span).get("arguments")
        return None if span is None else _decode_small(self.raw, span, limit=1 << 20)

    def result(self, limit: int = 16 << 20) -> Any:
        """``result`` decoded when it is at most ``limit`` bytes, else None."""
        return _decode_small(self.raw, self.result_span, limit=limit)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A stdin line that is not forwarded, and the error the client gets for it."""

    code: int
    message: str
    id: Any = None

    def line(self) -> bytes:
        return error_line(self.id, self.code, self.message)


PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
_NAME_PARAMS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_ID_TYPES = (str, int, float)


def peek(buf: bytes | bytearray, start: int = 0, end: int | None = None) -> Envelope:
    """Classify one JSON-RPC message (or batch) by scanning it. Raises ScanError / ValueError if invalid."""
    stop = len(buf) if end is None else end
    pos = _skip_ws(buf, start, stop)
    if pos < stop and buf[pos] == 0x5B:  # [ -> batch
        return _peek_batch(buf, pos, stop)
    members = member_spans(buf, start, stop)
    return _envelope(buf, members)


def _envelope(buf: bytes | bytearray, members: dict[str, tuple[int, int]]) -> Envelope:
    if _decode_small(buf, members.get("jsonrpc"), 64) != "2.0":
        raise _NotJsonRpc(_decode_id(buf, members), 'not a JSON-RPC 2.0 message ("jsonrpc": "2.0" missing)')
    if "method" in members:
        method = _decode_small(buf, members["method"], 4096)
        if not isinstance(method, str):
            raise _NotJsonRpc(_decode_id(buf, members), "JSON-RPC method must be a string")
        params_span = members.get("params")
        params = _sub_spans(buf, params_span)
        envelope = Envelope(raw=buf, kind="notification", method=method, params_span=params_span)
        if "id" in members:
            envelope.kind = "request"
            envelope.id = _checked_id(buf, members)
        name_param = _NAME_PARAMS.get(method)
        if name_param is not None:
            name = _decode_small(buf, params.get(name_param), 8192)
            envelope.name = name if isinstance(name, str) else None
        meta = _sub_spans(buf, params.get("_meta"))
        version = _decode_small(buf, meta.get(PROTOCOL_VERSION_META_KEY), 256)
        envelope.protocol_version = version if isinstance(version, str) else None
        if method == "notifications/cancelled":
            envelope.cancelled_id = _decode_small(buf, params.get("requestId"), 1024)
        return envelope
    if "id" in members and (("result" in members) != ("error" in members)):
        return Envelope(
            raw=buf,
            kind="response",
            id=_checked_id(buf, members, allow_null=True),
            is_error="error" in members,
            result_span=members.get("result"),
        )
    raise _NotJsonRpc(_decode_id(buf, members), "not a JSON-RPC request, notification or response")


def _peek_batch(buf: bytes | bytearray, pos: int, stop: int) -> Envelope:
    end = _value_end(buf, pos, stop)
    if _skip_ws(buf, end, stop) != stop:
        raise ScanError("trailing data after the batch")
    batch = Envelope(raw=buf, kind="batch")
    cursor = _skip_ws(buf, pos + 1, end - 1)
    while cursor < end - 1:
        element_end = _value_end(buf, cursor, end - 1)
        member = _envelope(buf, member_spans(buf, cursor, element_end))
        member.span = (cursor, element_end)
        batch.members.append(member)
        cursor = _skip_ws(buf, element_end, end - 1)
        if cursor < end - 1:
            if buf[cursor] != 0x2C:
                raise ScanError("expected ',' in batch")
            cursor = _skip_ws(buf, cursor + 1, end - 1)
    if not batch.members:
        raise _NotJsonRpc(None, "empty batch")
    return batch


class _NotJsonRpc(ValueError):
    def __init__(self, message_id: Any, reason: str) -> None:
        super().__init__(reason)
        self.message_id = message_id


def _decode_id(buf: bytes | bytearray, members: dict[str, tuple[int, int]]) -> Any:
    """The id to answer an invalid message under: a usable one, else None (JSON-RPC's null)."""
    value = _decode_small(buf, members.get("id"), 1024)
    return value if _usable_id(value) else None


def _checked_id(buf: bytes | bytearray, members: dict[str, tuple[int, int]], allow_null: bool = False) -> Any:
    value = _decode_small(buf, members["id"], 1024)
    if value is None and allow_null:
        return None
    if isinstance(value, float) and not math.isfinite(value):  # 1e400, and NaN / Infinity on unvalidated lines
        raise _NotJsonRpc(None, "JSON-RPC id must be a finite number")
    if not _usable_id(value):
        raise _NotJsonRpc(None, "JSON-RPC id must be a string or a number")
    return value


def _usable_id(value: Any) -> bool:
    """A string or a number JSON can write back (1e400 parses to infinity, which would be echoed as Infinity)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, _ID_TYPES) and not isinstance(value, bool)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def classify_line(line: bytes | bytearray) -> Envelope | Rejection:
    """Validate one stdin line and classify it; never raises.

    Invalid UTF-8 or JSON -> ``-32700`` (id null). Valid JSON that is not JSON-RPC -> ``-32600`` with the
    message's id when it has a usable one.
    """
    try:
        text = line.decode("utf-8") if len(line) <= FULL_VALIDATION_LIMIT else None
    except UnicodeDecodeError as exc:
        return Rejection(PARSE_ERROR, f"Parse error: the message is not valid UTF-8 ({exc.reason} at byte {exc.start})")
    if text is not None:
        try:
            json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            return Rejection(PARSE_ERROR, "Parse error: the message is nested too deeply")
        except ValueError as exc:
            return Rejection(PARSE_ERROR, f"Parse error: the message is not valid JSON ({exc})")
    try:
        return peek(line)
    except _NotJsonRpc as exc:
        return Rejection(INVALID_REQUEST, f"Invalid Request: {exc}", exc.message_id)
    except ScanError as exc:
        if text is not None:  # valid JSON, but not an object or array
            return Rejection(INVALID_REQUEST, "Invalid Request: not a JSON-RPC request, notification or response")
        return Rejection(PARSE_ERROR, f"Parse error: the message is not valid JSON ({exc})")
    except (ValueError, RecursionError) as exc:
        return Rejection(PARSE_ERROR, f"Parse error: the message is not valid JSON ({exc})")


def error_line(message_id: Any, code: int, message: str, data: Any = None) -> bytes:
    """A JSON-RPC error response as one line (no trailing newline)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return json.dumps({"jsonrpc": "2.0", "id": message_id, "error": error}, separators=(",", ":")).encode()

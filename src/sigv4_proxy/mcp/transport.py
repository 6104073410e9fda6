"""The upstream side of the bridge: MCP Streamable HTTP, client role, over a shared signed httpx client.

One :class:`StreamableHttpTransport` per proxy. Its three operations map to the specification's three
HTTP uses:

* :meth:`~StreamableHttpTransport.post` sends one client message (the exact bytes read from stdin) and
  hands every message of the answer — one JSON body, or the events of an SSE stream as they arrive — to
  the bridge's ``deliver`` callback. It reports what happened, network failures included, in a
  :class:`PostResult`; it never retries and never decides what the client is told (the bridge's ``send``
  does, in one place). No message is read past ``--max-message-bytes`` (a JSON body, an event, a compressed
  body as it is decompressed): the stream is closed and the result says so (``response_too_large``);
* :meth:`~StreamableHttpTransport.listen` holds the standalone GET stream (``--sse``) for
  server-initiated messages;
* :meth:`~StreamableHttpTransport.terminate` ends the session with DELETE at shutdown.

The legacy 2024-11-05 HTTP+SSE transport (:mod:`~sigv4_proxy.mcp.legacy`) fits behind the same three methods
(:class:`Transport`); :class:`AutoTransport` (``--transport auto``, the default) starts with Streamable HTTP and
switches to it when the server turns out to speak only that.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from sigv4_proxy.config import DEFAULT_MAX_MESSAGE_BYTES
from sigv4_proxy.logs import get_logger
from sigv4_proxy.mcp import jsonrpc
from sigv4_proxy.mcp.jsonrpc import Envelope
from sigv4_proxy.mcp.routing import LAST_EVENT_ID, MCP_PROTOCOL_VERSION, MCP_SESSION_ID, ToolHeaderMaps, routing_headers
from sigv4_proxy.mcp.session import SessionState
from sigv4_proxy.mcp.sse import SSEParser

if TYPE_CHECKING:
    import httpx

    from sigv4_proxy.mcp.legacy import LegacySseTransport

__all__ = [
    "FALLBACK_STATUSES",
    "AutoTransport",
    "Deliver",
    "PostResult",
    "ProblemKind",
    "StreamableHttpTransport",
    "Transport",
    "TransportName",
    "UpstreamLink",
]

log = get_logger("mcp")

ACCEPT_BOTH = "application/json, text/event-stream"
# A Streamable HTTP client falls back to the legacy transport when its first initialize POST gets one of these.
FALLBACK_STATUSES = frozenset({400, 404, 405})
MAX_ERROR_BODY = 64 * 1024

# What the client is told when HTTP succeeded but the answer is unusable: the cause, then the fix.
PROBLEM_ACCEPTED = (
    "HTTP 202 Accepted for a request, so no response will follow. Diagnosis: the server treated the request "
    "as a notification; check that the target URL is an MCP Streamable HTTP endpoint"
)
PROBLEM_REDIRECT = (
    "HTTP {status} redirect to {location}. Diagnosis: signed requests are not redirected (the signature covers "
    "the host and path); use the final URL as --target-url"
)
PROBLEM_EMPTY = (
    "HTTP {status} with an empty body instead of a JSON-RPC response. Diagnosis: the server or a gateway in front "
    "of it lost the response (a function that returned nothing, an integration timeout); check the server's logs"
)
PROBLEM_CONTENT_TYPE = (
    "HTTP {status} with content type {content_type} instead of JSON or an event stream. Diagnosis: the target URL "
    "probably points at something other than the MCP endpoint (a web page, a login page); check --target-url"
)
PROBLEM_NOT_JSONRPC = (
    "HTTP {status} with a body ({content_type}) that is not a JSON-RPC message. Diagnosis: the target URL probably "
    "points at something other than the MCP endpoint; check --target-url"
)
PROBLEM_STREAM_ENDED = (
    "the server's event stream ended without the response. Diagnosis: the server closed the stream early (crash, "
    "restart, or a gateway's time limit); the request may have been executed, so it was not resent"
)
PROBLEM_TOO_LARGE = (
    "response larger than {limit} bytes (--max-message-bytes): the server sent a message (a JSON body, an event, or "
    "what a compressed body expands to) over the limit, so the proxy stopped reading and closed the stream. "
    "Diagnosis: raise --max-message-bytes (MCP_MAX_MESSAGE_BYTES) if answers this large are expected; the request "
    "may have been executed, so it was not resent"
)
# PostResult.problem_kind values (the error's data.kind)
ProblemKind = Literal["unexpected_response", "response_too_large"]
UNEXPECTED_RESPONSE: Final = "unexpected_response"
RESPONSE_TOO_LARGE: Final = "response_too_large"

# deliver(message bytes, its envelope, the client message whose POST carried it (None: standalone stream))
Deliver = Callable[[bytes | bytearray, Envelope, Envelope | None], Awaitable[None]]


@dataclass
class PostResult:
    """What one POST produced, everything a retry policy needs to decide.

    ``status`` is None when no HTTP answer arrived (``error`` says why). ``problem`` is set when HTTP succeeded
    but the answer was unusable. ``delivered`` counts the messages already handed to the client from this
    answer: once it is above zero the server has certainly started executing the request. ``session_lost``
    says the server no longer knows the session the message was sent in (a 404 for a request carrying a
    session id; a legacy event stream that ended): nothing was executed, and a new session can be set up.
    ``problem_kind`` names the kind of ``problem`` for the client's error data (``response_too_large``: a message
    over ``--max-message-bytes``).
    """

    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""  # the first MAX_ERROR_BODY bytes of an error (status >= 400) body
    problem: str | None = None
    problem_kind: ProblemKind = UNEXPECTED_RESPONSE
    error: BaseException | None = None
    unanswered: set[str] = field(default_factory=set)  # keys of requests the answer did not answer
    content_type: str = ""
    delivered: int = 0
    received_at: float | None = None  # time.time() when the response headers arrived (clock-skew correction)
    session_lost: bool = False

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.status is not None
            and self.status < 400
            and self.problem is None
            and not self.unanswered
        )


TransportName = Literal["streamable-http", "sse"]


@dataclass(frozen=True)
class UpstreamLink:
    """What every transport of one proxy shares: the signing client, the target URL, the session state, where
    upstream messages go (the bridge's ``deliver``), the ``--headers`` and the ``--max-message-bytes`` limit."""

    client: httpx.AsyncClient
    url: str
    session: SessionState
    deliver: Deliver
    extra_headers: Sequence[tuple[str, str]] = ()
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


class Transport(Protocol):
    """What the bridge needs from an upstream transport: Streamable HTTP (here), the legacy HTTP+SSE one
    (:mod:`~sigv4_proxy.mcp.legacy`), or the ``auto`` choice between them."""

    @property
    def name(self) -> TransportName: ...

    @property
    def standalone_stream(self) -> bool:
        """Whether :meth:`listen` means anything (legacy SSE has only the one stream)."""
        ...

    @property
    def last_event_id(self) -> str | None:
        """The id of the standalone stream's last event (``Last-Event-ID`` when it is reopened)."""
        ...

    @property
    def retry_ms(self) -> int | None:
        """The standalone stream's reconnection time, as the server set it (None: it set none)."""
        ...

    async def post(self, message: Envelope, *, deliver: Deliver | None = None) -> PostResult: ...

    async def listen(self) -> PostResult: ...

    async def terminate(self, timeout: float = 2.0) -> None: ...


class StreamableHttpTransport:
    """Client side of MCP Streamable HTTP (2025-03-26 and later, incl. the 2026 per-request envelope)."""

    name: TransportName = "streamable-http"
    standalone_stream = True

    def __init__(self, link: UpstreamLink, *, tool_headers: ToolHeaderMaps | None = None) -> None:
        self.link = link
        self.tool_headers = tool_headers if tool_headers is not None else ToolHeaderMaps()
        self.last_event_id: str | None = None  # of the standalone stream
        self.retry_ms: int | None = None  # the standalone stream's reconnection time, as the server set it

    # -- POST -------------------------------------------------------------------------------------------------

    def post_headers(self, message: Envelope) -> dict[str, str]:
        headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
        headers.update(self.link.extra_headers)
        headers.update(
            routing_headers(
                message,
                session_id=self.link.session.session_id,
                negotiated_version=self.link.session.protocol_version,
                tool_headers=self.tool_headers,
            )
        )
        return headers

    async def post(self, message: Envelope, *, deliver: Deliver | None = None) -> PostResult:
        """POST ``message`` and hand every message of the answer to ``deliver`` (default: the bridge's).

        Never raises for network failures: they come back in ``result.error``, with ``delivered`` telling how
        far the answer got. Cancellation (the client cancelled, or shutdown) propagates.
        """
        awaited = {request.key for request in message.requests()}
        body = message.raw if isinstance(message.raw, bytes) else bytes(message.raw)
        request = self.link.client.build_request(
            "POST", self.link.url, content=body, headers=self.post_headers(message)
        )
        result = PostResult()
        counted = _Counting(deliver or self.link.deliver, result)
        started = time.monotonic()
        sent_in_session = MCP_SESSION_ID in request.headers
        try:
            async with _closing(await self.link.client.send(request, stream=True)) as response:
                result.received_at = time.time()
                result.status = response.status_code
                result.session_lost = response.status_code == 404 and sent_in_session
                result.headers = list(response.headers.multi_items())
                result.content_type = _media_type(response.headers.get("content-type", ""))
                if message.method == "initialize" and response.status_code < 300:
                    session_id = response.headers.get(MCP_SESSION_ID)
                    if session_id:
                        self.link.session.assigned(session_id)
                await self._read_answer(message, response, result, awaited, counted)
        except (OSError, _httpx_error()) as exc:
            result.error = exc
        result.unanswered = awaited
        if log.isEnabledFor(10):
            outcome = f"{result.status} {result.content_type or '-'}" if result.status else type(result.error).__name__
            log.debug(
                "POST %s -> %s in %.1f ms%s",
                _describe(message),
                outcome,
                (time.monotonic() - started) * 1000,
                f" ({result.problem.split('. Diagnosis')[0]})" if result.problem else "",
            )
        return result

    async def _read_answer(
        self, message: Envelope, response: httpx.Response, result: PostResult, awaited: set[str], deliver: Deliver
    ) -> None:
        status = response.status_code
        if status >= 400:
            result.body = await _read_limited(response, MAX_ERROR_BODY)
            return
        if status == 202 or not awaited:
            # Notifications and responses are acknowledged with 202; a body, if any, carries nothing for us.
            if awaited:
                result.problem = PROBLEM_ACCEPTED
            return
        if status >= 300:
            location = response.headers.get("location", "?")
            result.problem = PROBLEM_REDIRECT.format(status=status, location=location)
            return
        if result.content_type == "text/event-stream":
            await self._read_stream(message, response, result, awaited, deliver)
        elif result.content_type in ("application/json", ""):
            await self._read_json(message, response, result, awaited, deliver)
        else:
            body = await _read_limited(response, 1)
            result.problem = (PROBLEM_CONTENT_TYPE if body else PROBLEM_EMPTY).format(
                status=status, content_type=result.content_type
            )

    async def _read_json(
        self, message: Envelope, response: httpx.Response, result: PostResult, awaited: set[str], deliver: Deliver
    ) -> None:
        body = await read_bounded(response, self.link.max_message_bytes)
        if body is None:
            refuse_too_large(result, self.link.max_message_bytes)
            return
        if not body or body.isspace():
            result.problem = PROBLEM_EMPTY.format(status=response.status_code)
            return
        try:
            envelope = jsonrpc.peek(body)
        except ValueError:
            content_type = result.content_type or "no content type"
            result.problem = PROBLEM_NOT_JSONRPC.format(status=response.status_code, content_type=content_type)
            return
        await self._deliver(body, envelope, message, awaited, deliver)

    async def _read_stream(
        self, message: Envelope, response: httpx.Response, result: PostResult, awaited: set[str], deliver: Deliver
    ) -> None:
        parser = SSEParser(self.link.max_message_bytes)
        async for chunk in response.aiter_bytes():
            for event in parser.feed(chunk):
                await self._on_event(event.event, event.data, event.has_data, message, awaited, deliver)
            if not awaited:
                return  # every request of this POST is answered: the stream has nothing more for us
            if parser.too_large:
                refuse_too_large(result, self.link.max_message_bytes)
                return
        for event in parser.close():
            await self._on_event(event.event, event.data, event.has_data, message, awaited, deliver)
        if awaited:
            result.problem = PROBLEM_STREAM_ENDED

    async def _on_event(
        self,
        kind: str,
        data: bytearray,
        has_data: bool,
        message: Envelope | None,
        awaited: set[str],
        deliver: Deliver,
    ) -> None:
        envelope = message_event(kind, data, has_data)
        if envelope is not None:
            await self._deliver(data, envelope, message, awaited, deliver)

    async def _deliver(
        self,
        data: bytes | bytearray,
        envelope: Envelope,
        message: Envelope | None,
        awaited: set[str],
        deliver: Deliver,
    ) -> None:
        if envelope.kind == "response" and envelope.id is None and envelope.is_error and len(awaited) == 1:
            # An error about the request that could not name it (e.g. the server could not parse it): it
            # belongs to the one request this POST carried, and the client must see it under that id.
            request_key = next(iter(awaited))
            request = next(r for r in message.requests() if r.key == request_key) if message else None
            if request is not None:
                data = with_id(data, request.id)
                envelope = jsonrpc.peek(data)
        for answered in envelope.response_keys():
            awaited.discard(answered)
        await deliver(data, envelope, message)

    # -- standalone GET stream ------------------------------------------------------------------------------

    async def listen(self) -> PostResult:
        """Hold the standalone GET stream, delivering what arrives, until it ends; never raises for I/O.

        The result says how it ended: ``status`` 405 means the server offers no such stream; ``session_lost``
        that the server forgot the session; another status of 400 or more a refusal (``body`` holds the
        start of it); ``error`` a broken connection (``delivered`` tells whether the stream had been
        working); a status below 400 without ``problem`` or ``error`` that the server closed the stream.
        ``last_event_id`` and ``retry_ms`` keep what a reconnection needs (``Last-Event-ID``, the delay).
        """
        import httpx

        headers = {"Accept": "text/event-stream"}
        headers.update(self.link.extra_headers)
        if self.link.session.session_id:
            headers[MCP_SESSION_ID] = self.link.session.session_id
        if self.link.session.protocol_version:
            headers[MCP_PROTOCOL_VERSION] = self.link.session.protocol_version
        if self.last_event_id:
            headers[LAST_EVENT_ID] = self.last_event_id
        timeout = httpx.Timeout(self.link.client.timeout.connect, read=None, write=None, pool=None)
        result = PostResult()
        counted = _Counting(self.link.deliver, result)
        try:
            async with self.link.client.stream("GET", self.link.url, headers=headers, timeout=timeout) as response:
                result.status = response.status_code
                result.received_at = time.time()
                result.headers = list(response.headers.multi_items())
                result.content_type = _media_type(response.headers.get("content-type", ""))
                result.session_lost = response.status_code == 404 and MCP_SESSION_ID in headers
                if response.status_code >= 400:
                    result.body = await _read_limited(response, MAX_ERROR_BODY)
                    return result
                if result.content_type != "text/event-stream":
                    result.problem = "the server answered the GET without an event stream"
                    return result
                log.info("standalone event stream open%s", " (resumed)" if LAST_EVENT_ID in headers else "")
                parser = SSEParser(self.link.max_message_bytes)
                async for chunk in response.aiter_bytes():
                    for event in parser.feed(chunk):
                        if event.id is not None:
                            self.last_event_id = event.id
                        if event.retry is not None:
                            self.retry_ms = event.retry
                        await self._on_event(event.event, event.data, event.has_data, None, set(), counted)
                    if parser.too_large:
                        refuse_too_large(result, self.link.max_message_bytes)
                        return result
        except (OSError, httpx.HTTPError) as exc:
            result.error = exc
        return result

    # -- DELETE -----------------------------------------------------------------------------------------------

    async def terminate(self, timeout: float = 2.0) -> None:
        """End the session (DELETE). Best effort: failures are logged, never raised."""
        if not self.link.session.session_id:
            return
        headers = dict(self.link.extra_headers)
        headers[MCP_SESSION_ID] = self.link.session.session_id
        if self.link.session.protocol_version:
            headers[MCP_PROTOCOL_VERSION] = self.link.session.protocol_version
        try:
            response = await self.link.client.delete(self.link.url, headers=headers, timeout=timeout)
        except Exception as exc:  # shutting down: nothing to do but say so
            log.warning("could not end session %s: %s", self.link.session.session_id, type(exc).__name__)
            return
        if response.status_code in (200, 202, 204):
            log.info("session %s ended", self.link.session.session_id)
        elif response.status_code in (404, 405):
            log.debug("DELETE of session answered %s (no session to end)", response.status_code)
        else:
            log.warning("ending session %s failed: HTTP %s", self.link.session.session_id, response.status_code)


class AutoTransport:
    """``--transport auto``: Streamable HTTP, or the legacy HTTP+SSE transport (:mod:`~sigv4_proxy.mcp.legacy`,
    built by ``make_legacy`` only then) when the server answers the first ``initialize`` POST with 400, 404 or
    405 and a GET on the same URL opens a legacy event stream (the MCP specification's backwards compatibility).
    """

    def __init__(self, streamable: Transport, make_legacy: Callable[[], LegacySseTransport]) -> None:
        self.active: Transport = streamable
        self._make_legacy = make_legacy
        self._decided = False

    @property
    def name(self) -> TransportName:
        return self.active.name

    @property
    def standalone_stream(self) -> bool:
        return self.active.standalone_stream

    @property
    def last_event_id(self) -> str | None:
        return self.active.last_event_id

    @property
    def retry_ms(self) -> int | None:
        return self.active.retry_ms

    async def post(self, message: Envelope, *, deliver: Deliver | None = None) -> PostResult:
        result = await self.active.post(message, deliver=deliver)
        if self._decided or not _carries_initialize(message) or result.status is None:
            return result  # only an HTTP answer to initialize tells which transport the server speaks
        if result.status < 300:
            self._decided = True
            return result
        if result.status not in FALLBACK_STATUSES:
            return result  # 403, 429, 5xx ...: says nothing about the transport
        self._decided = True
        legacy = self._make_legacy()
        failure = await legacy.open()
        if failure is not None:
            log.debug(
                "initialize POST answered HTTP %s and a GET opened no legacy event stream (%s): staying with "
                "Streamable HTTP",
                result.status,
                failure.status if failure.status is not None else failure.problem or type(failure.error).__name__,
            )
            await legacy.terminate()
            return result
        log.info(
            "the server answered the initialize POST with HTTP %s and the GET with an event stream: using the "
            "legacy HTTP+SSE transport (2024-11-05)",
            result.status,
        )
        self.active = legacy
        return await legacy.post(message, deliver=deliver)

    async def listen(self) -> PostResult:
        return await self.active.listen()

    async def terminate(self, timeout: float = 2.0) -> None:
        await self.active.terminate(timeout)


def _carries_initialize(message: Envelope) -> bool:
    return any(request.method == "initialize" for request in message.requests())


class _Counting:
    """A deliver callback that counts what it passed on into ``result.delivered``."""

    def __init__(self, deliver: Deliver, result: PostResult) -> None:
        self._deliver = deliver
        self._result = result

    async def __call__(self, data: bytes | bytearray, envelope: Envelope, via: Envelope | None) -> None:
        self._result.delivered += 1
        await self._deliver(data, envelope, via)


@contextlib.asynccontextmanager
async def _closing(response: httpx.Response) -> AsyncIterator[httpx.Response]:
    try:
        yield response
    finally:
        await response.aclose()


def _httpx_error() -> type[Exception]:
    import httpx

    return httpx.HTTPError


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


async def read_bounded(response: httpx.Response, limit: int) -> bytearray | None:
    """The whole body, or None as soon as it grows past ``limit`` bytes (the rest is never read).

    httpx hands over decoded bytes one network read at a time, so counting them here bounds what a compressed
    body expands to as well: a gzip bomb costs at most the limit plus the expansion of one read."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        if len(body) + len(chunk) > limit:
            return None
        body += chunk
    return body


def refuse_too_large(result: PostResult, limit: int) -> None:
    """Record in ``result`` that the answer outgrew ``--max-message-bytes`` (the caller closes the stream)."""
    result.problem = PROBLEM_TOO_LARGE.format(limit=limit)
    result.problem_kind = RESPONSE_TOO_LARGE


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk[: limit - len(body)]
        if len(body) >= limit:
            break
    return bytes(body)


def message_event(kind: str, data: bytearray, has_data: bool) -> Envelope | None:
    """The JSON-RPC message a server-sent event carries, or None (logged) for anything else: a priming event
    (id only), a keep-alive, another event type, data that is not JSON-RPC."""
    if not has_data or not data or data.isspace():  # isspace() does not copy
        return None
    if kind != "message":
        log.debug("ignoring server-sent event of type %r", kind)
        return None
    try:
        return jsonrpc.peek(data)
    except ValueError:
        log.warning("dropped a server-sent event that is not a JSON-RPC message (%d bytes)", len(data))
        return None


def _describe(message: Envelope) -> str:
    if message.kind == "batch":
        return f"batch of {len(message.members)}"
    if message.kind == "response":
        return f"response id={message.key}"
    suffix = f" id={message.key}" if message.kind == "request" else ""
    return f"{message.method}{suffix} ({len(message.raw)} bytes)"


def with_id(data: bytes | bytearray, message_id: Any) -> bytes:
    """A small JSON-RPC response with its id replaced (errors only: they are small)."""
    decoded = json.loads(bytes(data))
    decoded["id"] = message_id
    return json.dumps(decoded, separators=(",", ":")).encode()

"""The 2024-11-05 HTTP+SSE transport (client side), and the ``auto`` choice between it and Streamable HTTP.

Legacy servers speak two URLs: a GET on the server URL opens an event stream whose first event, ``endpoint``,
names the URL to POST messages to (``/messages/?session_id=...``). Every POST is acknowledged (202) and
every answer — responses, notifications, server-to-client requests — arrives on that one stream. The
session lives exactly as long as the stream: when it ends, the server has forgotten the session.

:class:`LegacySseTransport` fits the bridge's :class:`~sigv4_proxy.mcp.transport.Transport` protocol:
``post`` sends one message (signed, like the GET) and waits on the stream for the answers it is owed,
reporting everything in a :class:`~sigv4_proxy.mcp.transport.PostResult` exactly as the Streamable HTTP
transport does, so retries, diagnosis and session recovery work the same way. A stream that ended is
reopened by the next POST, which then reports ``session_lost`` so the bridge re-initialises first.

:class:`~sigv4_proxy.mcp.transport.AutoTransport` (``--transport auto``) switches to this transport when the
server answers the first ``initialize`` POST with 400, 404 or 405 and a GET on the same URL opens a legacy
event stream (the MCP specification's backwards-compatibility procedure). This module is imported only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from sigv4_proxy.logs import get_logger
from sigv4_proxy.mcp.jsonrpc import Envelope
from sigv4_proxy.mcp.sse import SSEParser
from sigv4_proxy.mcp.transport import (
    MAX_ERROR_BODY,
    PROBLEM_REDIRECT,
    Deliver,
    PostResult,
    TransportName,
    UpstreamLink,
    _Counting,
    _describe,
    _media_type,
    _read_limited,
    message_event,
    refuse_too_large,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["LegacySseTransport"]

log = get_logger("mcp")

DEFAULT_ENDPOINT_WAIT = 30.0

PROBLEM_LEGACY_STREAM_ENDED = (
    "the server's event stream ended before the response arrived. Diagnosis: the server closed the stream "
    "(crash, restart, or a gateway's time limit) and with it the session; the request may have been executed, "
    "so it was not resent; the next request opens a new session"
)
PROBLEM_NO_STREAM = (
    "HTTP {status} with content type {content_type} instead of an event stream. Diagnosis: with --transport sse "
    "the target URL must be the server's SSE endpoint (often .../sse); use --transport streamable-http for "
    "servers that speak Streamable HTTP"
)
PROBLEM_NO_ENDPOINT = (
    "the server's event stream sent no endpoint event within {seconds:g} s. Diagnosis: the target URL is an "
    "event stream but not a legacy MCP SSE endpoint; check --target-url and --transport"
)
PROBLEM_FOREIGN_ENDPOINT = (
    "the server's endpoint event names another origin ({endpoint}). Diagnosis: signed requests are only sent to "
    "the target URL's origin; point --target-url at the server that receives the messages"
)
PROBLEM_SESSION_LOST = "the server's event stream ended, and with it the session"


@dataclass
class _Waiter:
    """A POST waiting for its answers on the shared stream."""

    keys: set[str]
    deliver: Deliver
    message: Envelope
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Stream:
    """One GET event stream: one legacy session."""

    generation: int
    response: httpx.Response | None = None
    reader: asyncio.Task[None] | None = None
    endpoint: str | None = None
    endpoint_seen: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    end_reason: BaseException | None = None
    too_large: bool = False  # closed by the proxy: a message outgrew --max-message-bytes
    last_activity: float = field(default_factory=time.monotonic)

    @property
    def alive(self) -> bool:
        return not self.ended.is_set()


class LegacySseTransport:
    """Client side of the 2024-11-05 HTTP+SSE transport over the shared signing httpx client."""

    name: TransportName = "sse"
    standalone_stream = False  # server-initiated messages ride the one stream anyway
    last_event_id: str | None = None  # (no standalone stream: nothing to resume or pace)
    retry_ms: int | None = None

    def __init__(
        self, link: UpstreamLink, *, timeout: float | None = None, endpoint_wait: float = DEFAULT_ENDPOINT_WAIT
    ) -> None:
        self.link = link
        self.timeout = timeout  # --timeout: how long an answer may take, counted from the stream's last sign of life
        self.endpoint_wait = min(endpoint_wait, timeout) if timeout else endpoint_wait
        self._stream: _Stream | None = None
        self._generations = 0
        self._session_generation: int | None = None  # the stream the current MCP session was initialised on
        self._opening = asyncio.Lock()
        self._waiters: dict[str, _Waiter] = {}

    # -- the event stream -------------------------------------------------------------------------------------

    async def open(self) -> PostResult | None:
        """Make sure the event stream is open and its endpoint known. None when it is, else why not."""
        async with self._opening:
            if self._stream is not None and self._stream.alive:
                return None
            return await self._open_locked()

    async def _open_locked(self) -> PostResult | None:
        import httpx

        self._generations += 1
        stream = _Stream(self._generations)
        headers = {"Accept": "text/event-stream", **dict(self.link.extra_headers)}
        timeout = httpx.Timeout(self.link.client.timeout.connect, read=None, write=None, pool=None)
        request = self.link.client.build_request("GET", self.link.url, headers=headers, timeout=timeout)
        result = PostResult()
        try:
            response = await self.link.client.send(request, stream=True)
        except (OSError, httpx.HTTPError) as exc:
            result.error = exc
            return result
        result.received_at = time.time()
        result.status = response.status_code
        result.headers = list(response.headers.multi_items())
        result.content_type = _media_type(response.headers.get("content-type", ""))
        if response.status_code >= 300 or result.content_type != "text/event-stream":
            try:
                if response.status_code >= 400:
                    result.body = await _read_limited(response, MAX_ERROR_BODY)
                elif response.status_code >= 300:
                    location = response.headers.get("location", "?")
                    result.problem = PROBLEM_REDIRECT.format(status=response.status_code, location=location)
                else:
                    content_type = result.content_type or "none"
                    result.problem = PROBLEM_NO_STREAM.format(status=response.status_code, content_type=content_type)
            except (OSError, httpx.HTTPError) as exc:
                result.error = exc
            finally:
                await response.aclose()
            return result
        stream.response = response
        stream.reader = asyncio.create_task(self._read(stream), name=f"legacy-sse-{stream.generation}")
        seen = asyncio.create_task(stream.endpoint_seen.wait())
        ended = asyncio.create_task(stream.ended.wait())
        await asyncio.wait({seen, ended}, timeout=self.endpoint_wait, return_when=asyncio.FIRST_COMPLETED)
        seen.cancel()
        ended.cancel()
        if stream.endpoint is None:
            await self._close(stream)
            if stream.too_large:
                refuse_too_large(result, self.link.max_message_bytes)
            elif stream.end_reason is not None:
                result.error = stream.end_reason
            else:
                result.problem = PROBLEM_NO_ENDPOINT.format(seconds=self.endpoint_wait)
            return result
        foreign = foreign_endpoint_problem(self.link.url, stream.endpoint)
        if foreign is not None:
            await self._close(stream)
            result.problem = foreign
            return result
        self._stream = stream
        log.info("legacy SSE event stream open; messages go to %s", urlsplit(stream.endpoint).path or "/")
        return None

    async def _read(self, stream: _Stream) -> None:
        """The stream's reader: the endpoint first, then every message to its waiter or to the client."""
        import httpx

        assert stream.response is not None
        parser = SSEParser(self.link.max_message_bytes)
        try:
            async for chunk in stream.response.aiter_bytes():
                stream.last_activity = time.monotonic()
                for event in parser.feed(chunk):
                    await self._on_event(stream, event.event, event.data, event.has_data)
                if parser.too_large:
                    # The one stream is the session: closing it fails what waits on it; the next POST opens a new one.
                    stream.too_large = True
                    break
        except (OSError, httpx.HTTPError) as exc:
            stream.end_reason = exc
        finally:
            stream.ended.set()
            for waiter in list(self._waiters.values()):
                waiter.done.set()  # wake them: the answers they wait for will never come on this stream
            with contextlib.suppress(Exception):
                await stream.response.aclose()
        if self._stream is stream:
            log.warning("the legacy SSE event stream ended (%s)", _end_cause(stream))

    async def _on_event(self, stream: _Stream, kind: str, data: bytearray, has_data: bool) -> None:
        if kind == "endpoint":
            if stream.endpoint is None and has_data:
                stream.endpoint = endpoint_url(self.link.url, data)
                stream.endpoint_seen.set()
            return
        envelope = message_event(kind, data, has_data)
        if envelope is None:
            return
        keys = envelope.response_keys()
        waiter = next((self._waiters[key] for key in keys if key in self._waiters), None)
        if waiter is None:
            await self.link.deliver(data, envelope, None)  # notifications, server requests, late answers
            return
        for key in keys:
            waiter.keys.discard(key)
            self._waiters.pop(key, None)
        await waiter.deliver(data, envelope, waiter.message)
        if not waiter.keys:
            waiter.done.set()

    async def _close(self, stream: _Stream) -> None:
        if stream.reader is not None and not stream.reader.done():
            stream.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stream.reader
        elif stream.response is not None:
            with contextlib.suppress(Exception):
                await stream.response.aclose()
        stream.ended.set()

    # -- POST ---------------------------------------------------------------------------------------------------

    async def post(self, message: Envelope, *, deliver: Deliver | None = None) -> PostResult:
        """POST ``message`` to the stream's endpoint and wait there for its answers (see the module docstring)."""
        import httpx

        failure = await self.open()
        if failure is not None:
            return failure
        stream = self._stream
        assert stream is not None and stream.endpoint is not None
        is_initialize = message.kind == "request" and message.method == "initialize"
        if not is_initialize and self._session_generation is not None and stream.generation != self._session_generation:
            return PostResult(problem=PROBLEM_SESSION_LOST, session_lost=True)
        result = PostResult()
        counted = _Counting(deliver or self.link.deliver, result)
        awaited = {request.key for request in message.requests()}
        waiter = _Waiter(set(awaited), counted, message) if awaited else None
        for key in awaited:
            self._waiters[key] = waiter  # type: ignore[assignment]
        body = message.raw if isinstance(message.raw, bytes) else bytes(message.raw)
        headers = {"Content-Type": "application/json", **dict(self.link.extra_headers)}
        started = time.monotonic()
        try:
            response = await self._acknowledge(stream.endpoint, body, headers, result)
            if response.status_code >= 400:
                # the SDK's legacy server: 404 "Could not find session" once it forgot the endpoint's session
                result.session_lost = response.status_code == 404 and not is_initialize
                if result.session_lost:
                    # The stream's session is gone even if the stream has not ended yet (a restarted server's cut
                    # reaches us later): close it, so the re-initialize opens a new stream instead of posting to
                    # the dead endpoint.
                    await self._close(stream)
            elif response.status_code >= 300:
                location = response.headers.get("location", "?")
                result.problem = PROBLEM_REDIRECT.format(status=response.status_code, location=location)
            elif waiter is not None:
                await self._wait(waiter, stream, result)
        except (OSError, httpx.HTTPError) as exc:
            if waiter is not None and not waiter.keys:  # answered on the stream; only the acknowledgement broke
                result.status = result.status or 202
            else:
                result.error = exc
        finally:
            for key in awaited:
                if self._waiters.get(key) is waiter:
                    del self._waiters[key]
        result.unanswered = set(waiter.keys) if waiter is not None else set()
        if is_initialize and result.ok:
            self._session_generation = stream.generation
            self.link.session.assigned(_session_of(stream.endpoint))
        log.debug(
            "POST %s -> %s in %.1f ms (legacy SSE)",
            _describe(message),
            result.status if result.status is not None else type(result.error).__name__,
            (time.monotonic() - started) * 1000,
        )
        return result

    async def _acknowledge(
        self, endpoint: str, body: bytes, headers: dict[str, str], result: PostResult
    ) -> httpx.Response:
        """POST the message; the acknowledgement (202) goes into ``result``, its body only as far as an error
        needs: the answers come on the stream, and a body that never ends must not be read to its end."""
        request = self.link.client.build_request("POST", endpoint, content=body, headers=headers)
        response = await self.link.client.send(request, stream=True)
        try:
            result.received_at = time.time()
            result.status = response.status_code
            result.headers = list(response.headers.multi_items())
            result.content_type = _media_type(response.headers.get("content-type", ""))
            body = await _read_limited(response, MAX_ERROR_BODY)  # a short body is read to its end: keep-alive
        finally:
            await response.aclose()
        if response.status_code >= 400:
            result.body = body
        return response

    async def _wait(self, waiter: _Waiter, stream: _Stream, result: PostResult) -> None:
        """Wait for the answers; --timeout counts from the stream's last sign of life, so a stream that keeps
        delivering (progress, other answers, keep-alives) is never cut."""
        import httpx

        while waiter.keys:
            if not stream.alive:
                if stream.too_large:
                    refuse_too_large(result, self.link.max_message_bytes)
                elif stream.end_reason is not None and waiter.keys:
                    result.error = stream.end_reason
                else:
                    result.problem = PROBLEM_LEGACY_STREAM_ENDED
                return
            remaining = None
            if self.timeout:
                remaining = self.timeout - (time.monotonic() - stream.last_activity)
                if remaining <= 0:
                    result.error = httpx.ReadTimeout(f"no response within {self.timeout:g} s")
                    return
            waiter.done.clear()
            if not waiter.keys:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter.done.wait(), remaining)

    # -- the rest of the Transport protocol -----------------------------------------------------------------------

    async def listen(self) -> PostResult:
        """No standalone stream in this transport: server-initiated messages arrive on the one stream."""
        return PostResult(status=405)

    async def terminate(self, timeout: float = 2.0) -> None:
        """Close the event stream (the legacy transport has no DELETE: the session ends with its stream)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await self._close(stream)
            log.info("legacy SSE event stream closed")


def _end_cause(stream: _Stream) -> str:
    if stream.too_large:
        return "closed by the proxy: a message was larger than --max-message-bytes"
    if stream.end_reason is not None:
        return type(stream.end_reason).__name__
    return "closed by the server"


def endpoint_url(stream_url: str, data: bytes | bytearray) -> str:
    """The URL an ``endpoint`` event names (often relative, with the session in its query), made absolute."""
    return urljoin(stream_url, bytes(data).decode("utf-8", "replace").strip())


def foreign_endpoint_problem(stream_url: str, endpoint: str) -> str | None:
    """The problem when the endpoint is on another origin than the stream (the proxy would sign requests for a
    host the user never named), else None."""
    if _same_origin(stream_url, endpoint):
        return None
    return PROBLEM_FOREIGN_ENDPOINT.format(endpoint=_origin(endpoint))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _same_origin(base: str, other: str) -> bool:
    a, b = urlsplit(base), urlsplit(other)
    return (a.scheme.lower(), a.hostname, a.port) == (b.scheme.lower(), b.hostname, b.port)


def _session_of(endpoint: str) -> str | None:
    from urllib.parse import parse_qs

    query = parse_qs(urlsplit(endpoint).query)
    values = query.get("session_id") or query.get("sessionId")
    return values[0] if values else None

"""`sigv4-proxy http`: a local plain-HTTP endpoint that forwards every request, signed, to the target.

    curl -N http://127.0.0.1:8080/            ->  POST https://abc123.execute-api.../prod/mcp  (SigV4-signed)

Any MCP client that speaks Streamable HTTP, and curl, can then reach an IAM-protected endpoint.

Design:

- **Server stack**: a small asyncio server on ``h11`` (the HTTP/1.1 state machine httpx already depends on),
  not uvicorn/starlette: no new runtime dependency, tens of milliseconds less start-up, and direct control of
  backpressure — each response chunk is written and drained before the next is read from the upstream, so a
  50 MB body or an endless SSE stream passes through in constant memory.
- **Request bodies are read completely** (up to ``--max-message-bytes``) before they are sent: the signature
  covers the body's SHA-256, so nothing can be sent before the last byte arrived, and a complete body is what
  makes a retry possible. **Response bodies stream** chunk by chunk, SSE included, in their wire encoding.
- **Paths**: ``/`` is the target URL itself; any other path is appended to the target URL's path
  (target ``https://h/prod/mcp``: ``/`` -> ``/prod/mcp``, ``/x?a=1`` -> ``/prod/mcp/x?a=1``). ``/healthz``
  is answered locally.
- **Headers**: only the allow-list below (plus ``--pass-header`` names) is forwarded; the proxy's
  ``--headers`` are added; everything is signed with :class:`sigv4_proxy.auth.SigV4Auth`.
- **Failures** go through the same retry policy (:mod:`sigv4_proxy.retry`) and diagnosis
  (:mod:`sigv4_proxy.diagnose`) as the MCP proxy. A final failure is answered with the upstream status (or
  502/504/503 when there was no answer) and a JSON body ``{"error": {...diagnosis...}}``; the one-line
  diagnosis is also in the ``x-sigv4-proxy-diagnosis`` header. An upstream JSON-RPC error body is passed
  through unchanged (it is the MCP server's own answer), and so is every body with ``--raw-errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import h11
import httpx

from sigv4_proxy import diagnose, retry
from sigv4_proxy.clock import SkewedClock, utc_now
from sigv4_proxy.logging import get_logger

if TYPE_CHECKING:
    from sigv4_proxy.config import ProxyConfig

__all__ = [
    "FORWARDED_REQUEST_HEADERS",
    "HttpListener",
    "ListenerOptions",
    "forward_request_headers",
    "parse_listen",
    "run_http_listener",
    "upstream_url",
]

log = get_logger("http")

HEALTH_PATH = "/healthz"
DIAGNOSIS_HEADER = "x-sigv4-proxy-diagnosis"
DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_CONNECT_TIMEOUT = 30.0
MAX_HEADER_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
SHUTDOWN_GRACE = 5.0
# A client that hangs up mid-response (the MCP SDK closes a POST's stream once its answer arrived) leaves the
# upstream response running: it is drained, up to this long and this much, so its connection can be reused —
# to AWS that saves a TLS handshake. An endless event stream is cut when the time is up.
HANGUP_DRAIN_SECONDS = 2.0
HANGUP_DRAIN_BYTES = 1024 * 1024

# Client request headers forwarded to the target (and signed). Everything else is dropped: cookies, the
# client's own Authorization (the signature takes its place), Host (the target's), hop-by-hop headers,
# Forwarded/X-Forwarded-* (they would reveal local addresses), and the signing headers below.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "baggage",
        "cache-control",
        "content-encoding",
        "content-language",
        "content-type",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-event-id",
        "mcp-protocol-version",
        "mcp-session-id",
        "range",
        "traceparent",
        "tracestate",
        "user-agent",
        "x-amzn-trace-id",
        "x-api-key",
    }
)
# x-amz-* headers pass (x-amz-target, x-amz-user-agent, ...) except those that signing owns.
SIGNING_HEADERS = frozenset(
    {
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "x-amz-region-set",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-algorithm",
        "x-amz-signedheaders",
        "x-amz-expires",
    }
)
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


# --- pure helpers ----------------------------------------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:8080``, ``[::1]:8080``, ``localhost:0``, ``:8080`` or ``8080`` -> (host, port)."""
    value = text.strip()
    if value.isdigit():
        host, port_text = "127.0.0.1", value
    elif value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"listen address must be HOST:PORT, got: {text}")
        port_text = rest[1:]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise ValueError(f"listen address must be HOST:PORT, got: {text}")
        host = host or "127.0.0.1"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"listen port must be a number from 0 to 65535, got: {port_text or '(none)'}")
    return host, int(port_text)


def forward_request_headers(
    headers: Iterable[tuple[str, str]], pass_headers: frozenset[str] = frozenset()
) -> tuple[list[tuple[str, str]], list[str]]:
    """(headers to forward, names dropped). Names compare case-insensitively; order is kept."""
    kept: list[tuple[str, str]] = []
    dropped: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        allowed = (
            lowered in FORWARDED_REQUEST_HEADERS
            or lowered in pass_headers
            or (lowered.startswith("x-amz-") and lowered not in SIGNING_HEADERS)
        )
        if allowed and lowered not in SIGNING_HEADERS and lowered not in HOP_BY_HOP:
            kept.append((name, value))
        else:
            dropped.append(lowered)
    return kept, dropped


def response_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Upstream response headers (raw bytes) to pass back: all but hop-by-hop ones (framing is redone here)."""
    return [(name, value) for name, value in headers if name.decode("latin-1").lower() not in HOP_BY_HOP]


def upstream_url(target_url: str, request_target: str) -> str:
    """Map a local request target (path and query, as received) onto the target URL.

    ``/`` is the target URL itself; other paths are appended to its path; query strings are joined. The
    path is kept byte for byte (an AgentCore ``/runtimes/<url-encoded ARN>/invocations`` stays encoded).
    """
    target = urlsplit(target_url)
    path, _, query = request_target.partition("?")
    base = target.path or "/"
    full_path = base if path in ("", "/") else base.rstrip("/") + path
    queries = [part for part in (target.query, query) if part]
    return f"{target.scheme}://{target.netloc}{full_path}" + ("?" + "&".join(queries) if queries else "")


def jsonrpc_methods(body: bytes, content_type: str | None) -> list[str] | None:
    """The JSON-RPC methods of a request body, or None when it is not JSON-RPC (used for replay safety)."""
    if not body or len(body) > 1024 * 1024 or "json" not in (content_type or "").lower():
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    messages = parsed if isinstance(parsed, list) else [parsed]
    methods = [m.get("method") for m in messages if isinstance(m, dict)]
    if not methods or not all(isinstance(m, str) for m in methods):
        return None
    return methods  # type: ignore[return-value]


def is_jsonrpc_message(body: bytes) -> bool:
    """An upstream error body that is a JSON-RPC message is the MCP server's own answer: pass it on."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    messages = parsed if isinstance(parsed, list) else [parsed]
    return bool(messages) and all(isinstance(m, dict) and m.get("jsonrpc") == "2.0" for m in messages)


def decode_for_diagnosis(body: bytes, content_encoding: str | None) -> bytes:
    """Undo gzip/deflate on an error body so it can be read; anything else is diagnosed as is."""
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return body
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        return zlib.decompressobj(wbits).decompress(body, diagnose.MAX_DIAGNOSED_BODY)
    except zlib.error:
        return body


def ascii_header_value(text: str, limit: int = 2000) -> str:
    """A one-line diagnosis as a header value (HTTP header values are ASCII in practice)."""
    text = " ".join(text.replace("…", "...").split())
    return text.encode("ascii", "replace").decode("ascii")[:limit]


def status_for_failure(kind: str) -> int:
    """The local status for a failure with no upstream answer."""
    if kind in (diagnose.READ_TIMEOUT, diagnose.TIMEOUT, diagnose.CONNECT_TIMEOUT, diagnose.POOL_TIMEOUT):
        return 504
    if kind == diagnose.CREDENTIALS:
        return 503  # nothing to sign with: temporary, e.g. until `aws sso login`
    return 502


# --- the listener ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenerOptions:
    """What `sigv4-proxy http` adds to the proxy's configuration."""

    host: str = "127.0.0.1"
    port: int = 8080
    policy: retry.RetryPolicy = field(default_factory=retry.RetryPolicy)
    pass_headers: frozenset[str] = frozenset()
    raw_errors: bool = False


@dataclass
class _Incoming:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    http_version: str


class _ClientGone(Exception):
    """The local client closed its connection."""


class _Connection:
    """One client connection: h11 state plus the socket, with backpressure on every write."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.gone = False  # the client closed its side: nothing more is written
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self.h11.they_are_waiting_for_100_continue:
                await self.send(h11.InformationalResponse(status_code=100, headers=[]))
            data = await self.reader.read(READ_CHUNK)
            self.h11.receive_data(data)

    async def send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data and not self.gone:
            try:
                self.writer.write(data)
                await self.writer.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise _ClientGone() from exc

    async def wait_for_disconnect(self) -> None:
        """Returns when the client closes its side; pipelined bytes are kept for h11."""
        while True:
            data = await self.reader.read(READ_CHUNK)
            if not data:
                return
            self.h11.receive_data(data)

    def abort(self) -> None:
        transport = self.writer.transport
        if transport is not None and not transport.is_closing():
            transport.abort()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 1)


class HttpListener:
    """The local endpoint. Use from async code::

        listener = HttpListener(config, provider, ListenerOptions(port=0))
        await listener.start()          # listener.url is now http://127.0.0.1:<port>
        ...
        await listener.aclose()

    `provider` is the process's credential provider; `client` (optional) a signing ``httpx.AsyncClient``;
    `clock` the :class:`SkewedClock` the client signs with (corrected on clock-skew answers); `random_source`
    the jitter source; `sleep` waits between attempts (tests record the delays instead of waiting).
    """

    hangup_drain_seconds = HANGUP_DRAIN_SECONDS

    def __init__(
        self,
        config: ProxyConfig,
        provider: Any,
        options: ListenerOptions | None = None,
        *,
        clock: SkewedClock | None = None,
        client: httpx.AsyncClient | None = None,
        random_source: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.provider = provider
        self.options = options or ListenerOptions()
        self.clock = clock or SkewedClock()
        self._own_client = client is None
        self.client = client or _build_client(config, provider, self.clock)
        self._random = random_source
        self._sleep = sleep
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._active_requests = 0
        self._event_streams: set[asyncio.Task[Any]] = set()  # GETs: cut at once on shutdown, they never end
        self._idle = asyncio.Event()
        self._idle.set()
        self.url = ""
        connect = config.timeout if config.timeout else DEFAULT_CONNECT_TIMEOUT
        self._upstream_timeout = httpx.Timeout(
            connect=min(connect, DEFAULT_CONNECT_TIMEOUT), read=None, write=config.timeout, pool=None
        )

    # -- lifecycle ------------------------------------------------------------------------------------------------

    async def start(self) -> str:
        self._server = await asyncio.start_server(
            self._on_connection, self.options.host, self.options.port, limit=READ_CHUNK, backlog=512
        )
        sockname = self._server.sockets[0].getsockname()
        host = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
        self.url = f"http://{host}:{sockname[1]}"
        return self.url

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def serve_until(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def aclose(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, cut GET requests (event streams never end), give other requests in flight `grace`
        seconds, cut what is left, close."""
        if self._server is not None:
            self._server.close()
        for stream in list(self._event_streams):
            stream.cancel()
        if self._active_requests:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
        if self._own_client:
            await self.client.aclose()

    # -- connections ----------------------------------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = _Connection(reader, writer)
        try:
            await self._serve_connection(connection)
        except (_ClientGone, ConnectionError):
            pass
        except asyncio.CancelledError:
            connection.abort()
        except Exception:
            log.exception("HTTP listener: unexpected error on a connection from %s", connection.peer)
            connection.abort()
        finally:
            self._tasks.discard(task)
            await connection.close()

    async def _serve_connection(self, connection: _Connection) -> None:
        while True:
            try:
                incoming = await self._read_request(connection)
            except h11.RemoteProtocolError as exc:
                await self._reject_malformed(connection, exc)
                return
            if incoming is None:
                return
            await self._handle(connection, incoming)
            if connection.h11.our_state is h11.MUST_CLOSE or connection.h11.their_state is not h11.DONE:
                return
            try:
                connection.h11.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _read_request(self, connection: _Connection) -> _Incoming | None:
        event = await connection.next_event()
        if not isinstance(event, h11.Request):  # ConnectionClosed: the client is done with this connection
            return None
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers]
        incoming = _Incoming(
            method=event.method.decode("ascii"),
            target=event.target.decode("latin-1"),
            headers=headers,
            body=b"",
            http_version=event.http_version.decode("ascii"),
        )
        limit = self.config.max_message_bytes
        declared = diagnose.header_value(headers, "content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(connection, limit)
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await connection.next_event()
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    await self._too_large(connection, limit)
                    return None
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                incoming.body = b"".join(chunks)
                return incoming
            else:  # the client went away mid-body
                return None

    async def _reject_malformed(self, connection: _Connection, exc: h11.RemoteProtocolError) -> None:
        if connection.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint or 400
            await self._send_json(
                connection, status, {"error": {"message": f"malformed HTTP request: {exc}"}}, close=True
            )

    async def _too_large(self, connection: _Connection, limit: int) -> None:
        message = (
            f"request body larger than {limit} bytes: raise --max-message-bytes (the body is read completely "
            "because the signature covers its SHA-256)"
        )
        await self._send_json(connection, 413, {"error": {"message": message, "kind": "payload_too_large"}}, close=True)

    # -- one request ----------------------------------------------------------------------------------------------

    async def _handle(self, connection: _Connection, incoming: _Incoming) -> None:
        path = incoming.target.partition("?")[0]
        if path == HEALTH_PATH and incoming.method in ("GET", "HEAD"):
            await self._health(connection, incoming)
            return
        self._active_requests += 1
        self._idle.clear()
        started = time.monotonic()
        # The request runs in this task. A watcher notices the client hanging up: the upstream response is then
        # drained for a moment (see HANGUP_DRAIN_SECONDS) and cut if it does not end.
        current = asyncio.current_task()
        assert current is not None
        cut = False

        async def watch() -> None:
            nonlocal cut
            await connection.wait_for_disconnect()
            connection.gone = True
            await asyncio.sleep(self.hangup_drain_seconds)
            cut = True
            current.cancel()

        watcher = asyncio.ensure_future(watch())
        if incoming.method == "GET":
            self._event_streams.add(current)
        try:
            await self._proxy(connection, incoming, started)
        except asyncio.CancelledError:
            if not cut:
                raise  # shutting down
            raise _ClientGone() from None
        finally:
            self._event_streams.discard(current)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher  # the next request reads from the same stream: the watcher must be gone first
            self._active_requests -= 1
            if not self._active_requests:
                self._idle.set()
            if connection.gone:
                log.debug(
                    "%s %s: the client closed the connection after %.1f ms",
                    incoming.method,
                    incoming.target,
                    (time.monotonic() - started) * 1000,
                )
        if connection.gone:
            raise _ClientGone()

    async def _proxy(self, connection: _Connection, incoming: _Incoming, started: float) -> None:
        headers, dropped = forward_request_headers(incoming.headers, self.options.pass_headers)
        if dropped:
            log.debug("not forwarded (not in the allow-list; see --pass-header): %s", ", ".join(sorted(set(dropped))))
        if not any(name.lower() == "accept-encoding" for name, _ in headers):
            headers.append(("Accept-Encoding", "identity"))  # bodies pass through undecoded: ask for plain ones
        headers.extend(self.config.headers)
        url = upstream_url(self.config.target_url, incoming.target)
        replay_safe = retry.http_replay_safe(incoming.method) or retry.mcp_replay_safe(
            jsonrpc_methods(incoming.body, diagnose.header_value(incoming.headers, "content-type"))
        )
        state = retry.RetryState()
        while True:
            response: httpx.Response | None = None
            prefix, rest = b"", None
            try:
                response = await self._send_upstream(incoming.method, url, headers, incoming.body)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                diagnosis = diagnose.diagnose_exception(exc, context=self._context())
                outcome = retry.Outcome.from_diagnosis(diagnosis, replay_safe=replay_safe)
            else:
                if response.status_code < 400:
                    await self._stream(connection, incoming, response, started, state)
                    return
                try:
                    prefix, rest = await _read_prefix(response, diagnose.MAX_DIAGNOSED_BODY)
                except Exception as exc:  # the error body itself broke off
                    await response.aclose()
                    diagnosis = diagnose.diagnose_exception(exc, context=self._context())
                    outcome = retry.Outcome.from_diagnosis(diagnosis, replay_safe=replay_safe)
                    response = None
                else:
                    diagnosis = diagnose.diagnose_response(
                        response.status_code,
                        response.headers.multi_items(),
                        decode_for_diagnosis(prefix, response.headers.get("content-encoding")),
                        context=self._context(),
                    )
                    outcome = retry.Outcome.from_diagnosis(
                        diagnosis, headers=response.headers.multi_items(), request_sent=True, replay_safe=replay_safe
                    )
            decision = self.options.policy.decide(state, outcome, random=self._random, now=utc_now())
            if not decision.retry:
                await self._fail(connection, incoming, diagnosis, decision, state, response, prefix, rest, started)
                return
            if response is not None:
                await response.aclose()
            log.warning("%s %s: %s — %s", incoming.method, incoming.target, diagnosis.message(), decision.reason)
            failure = await self._recover(decision, diagnosis, response)
            if failure is not None:
                await self._fail(
                    connection, incoming, failure, retry.Decision(retry.GIVE_UP), state, None, b"", None, started
                )
                return
            if connection.gone:
                raise _ClientGone()  # nobody is waiting for a retry
            if decision.delay:
                await self._sleep(decision.delay)

    async def _send_upstream(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> httpx.Response:
        request = self.client.build_request(method, url, headers=headers, content=body, timeout=self._upstream_timeout)
        sending = self.client.send(request, stream=True)
        if not self.config.timeout:
            return await sending
        try:
            return await asyncio.wait_for(sending, self.config.timeout)
        except asyncio.TimeoutError:
            # --timeout bounds the wait for the response head; streams that deliver are never cut.
            raise httpx.ReadTimeout(f"no response within {self.config.timeout:g} s", request=request) from None

    async def _recover(
        self, decision: retry.Decision, diagnosis: diagnose.Diagnosis, response: httpx.Response | None
    ) -> diagnose.Diagnosis | None:
        """Refresh credentials or correct the clock before the retry; a diagnosis when that fails."""
        if decision.action == retry.REFRESH_CREDENTIALS:
            try:
                await asyncio.to_thread(self.provider.force_refresh)
            except Exception as exc:
                return diagnose.diagnose_exception(exc, context=self._context())
            log.info("credentials refreshed after the server said the token expired")
        elif decision.action == retry.CORRECT_CLOCK:
            date = response.headers.get("date") if response is not None else None
            if self.clock.correct(date, aws_message=diagnosis.aws_message) is None:
                log.warning("clock skew reported but the response tells no server time; retrying unchanged")
            else:
                log.warning("clock skew: %s", self.clock.describe())
        return None

    async def _stream(
        self,
        connection: _Connection,
        incoming: _Incoming,
        response: httpx.Response,
        started: float,
        state: retry.RetryState,
    ) -> None:
        sent = 0
        try:
            await connection.send(
                h11.Response(
                    status_code=response.status_code,
                    headers=response_headers(response.headers.raw),
                    reason=response.reason_phrase.encode("latin-1", "replace"),
                )
            )
            async for chunk in response.aiter_raw():
                sent += len(chunk)
                if connection.gone and sent > HANGUP_DRAIN_BYTES:
                    raise _ClientGone()  # too much left to drain: cut the upstream connection instead
                await connection.send(h11.Data(data=chunk))
            await connection.send(h11.EndOfMessage())
        except (httpx.HTTPError, OSError) as exc:
            # The head is already out: the only honest signal left is an incomplete response.
            diagnosis = diagnose.diagnose_exception(exc, context=self._context())
            log.warning(
                "%s %s: upstream response broke off after %d bytes: %s",
                incoming.method,
                incoming.target,
                sent,
                diagnosis.message(),
            )
            connection.abort()
            raise _ClientGone() from exc
        finally:
            await response.aclose()
        self._log_done(incoming, response.status_code, started, state, sent)

    async def _fail(
        self,
        connection: _Connection,
        incoming: _Incoming,
        diagnosis: diagnose.Diagnosis,
        decision: retry.Decision,
        state: retry.RetryState,
        response: httpx.Response | None,
        prefix: bytes,
        rest: AsyncIterator[bytes] | None,
        started: float,
    ) -> None:
        message = diagnosis.final_message(state.attempts, decision.reason or "")
        log.warning("%s %s: %s", incoming.method, incoming.target, message)
        if response is not None and (
            self.options.raw_errors
            or rest is not None
            or is_jsonrpc_message(decode_for_diagnosis(prefix, response.headers.get("content-encoding")))
        ):
            await self._pass_through_error(connection, response, prefix, rest, message)
            self._log_done(incoming, response.status_code, started, state, len(prefix))
            return
        if response is not None:
            await response.aclose()
        status = diagnosis.status if diagnosis.status is not None else status_for_failure(diagnosis.kind)
        error = {**diagnosis.to_dict(), "message": message, "attempts": state.attempts}
        error["retry"] = decision.reason or None
        body: dict[str, Any] = {"error": error}
        if response is not None:
            body["upstream"] = {
                "status": response.status_code,
                "content_type": response.headers.get("content-type"),
                "body": diagnose.redact(
                    decode_for_diagnosis(prefix, response.headers.get("content-encoding")).decode("utf-8", "replace")
                ),
            }
        extra = [(DIAGNOSIS_HEADER, ascii_header_value(message))]
        if response is not None:
            keep = ("x-amzn-requestid", "x-amzn-errortype", "x-amz-apigw-id", "retry-after", "mcp-session-id")
            extra += [(k, v) for k, v in response.headers.multi_items() if k.lower() in keep]
        await self._send_json(connection, status, body, extra_headers=extra)
        self._log_done(incoming, status, started, state, None)

    async def _pass_through_error(
        self,
        connection: _Connection,
        response: httpx.Response,
        prefix: bytes,
        rest: AsyncIterator[bytes] | None,
        message: str,
    ) -> None:
        headers = response_headers(response.headers.raw)
        headers.append((DIAGNOSIS_HEADER.encode(), ascii_header_value(message).encode()))
        try:
            await connection.send(h11.Response(status_code=response.status_code, headers=headers))
            if prefix:
                await connection.send(h11.Data(data=prefix))
            if rest is not None:
                async for chunk in rest:
                    await connection.send(h11.Data(data=chunk))
            await connection.send(h11.EndOfMessage())
        except (httpx.HTTPError, OSError) as exc:
            connection.abort()
            raise _ClientGone() from exc
        finally:
            await response.aclose()

    async def _health(self, connection: _Connection, incoming: _Incoming) -> None:
        credentials = None
        with contextlib.suppress(Exception):
            credentials = self.provider.cached() if hasattr(self.provider, "cached") else None
        body = {
            "status": "ok",
            "target": _display_url(self.config.target_url),
            "service": self.config.service,
            "region": self.config.signing_region,
            "signature_version": self.config.sig_version,
            "credentials": credentials.masked_access_key if credentials is not None else None,
            "clock_offset_seconds": round(self.clock.offset, 3),
        }
        await self._send_json(connection, 200, body, head_only=incoming.method == "HEAD")

    async def _send_json(
        self,
        connection: _Connection,
        status: int,
        body: dict[str, Any],
        *,
        extra_headers: Iterable[tuple[str, str]] = (),
        close: bool = False,
        head_only: bool = False,
    ) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8") + b"\n"
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(payload))),
            ("cache-control", "no-store"),
            *extra_headers,
        ]
        if close:
            headers.append(("connection", "close"))
        await connection.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
        if not head_only:
            await connection.send(h11.Data(data=payload))
        await connection.send(h11.EndOfMessage())

    # -- helpers ----------------------------------------------------------------------------------------------------

    def _context(self) -> diagnose.SigningContext:
        credentials = None
        with contextlib.suppress(Exception):
            credentials = self.provider.cached() if hasattr(self.provider, "cached") else None
        return diagnose.SigningContext(
            url=self.config.target_url,
            region=self.config.signing_region,
            service=self.config.service,
            algorithm=self.config.sig_version,
            access_key=credentials.masked_access_key if credentials is not None else None,
            has_session_token=bool(credentials.session_token) if credentials is not None else None,
            credential_method=getattr(self.provider, "method", None),
            profile=self.config.profile,
        )

    def _log_done(
        self, incoming: _Incoming, status: int, started: float, state: retry.RetryState, size: int | None
    ) -> None:
        elapsed = (time.monotonic() - started) * 1000
        attempts = f", {state.attempts} attempts" if state.attempts > 1 else ""
        sent = f", {size} bytes" if size is not None else ""
        log.info("%s %s -> %d (%.1f ms%s%s)", incoming.method, incoming.target, status, elapsed, attempts, sent)


async def _read_prefix(response: httpx.Response, limit: int) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """At least `limit` raw bytes of a body (or all of it), and the iterator over the rest — None when the
    body ended. A pass-through then sends the prefix and the rest: every byte exactly once."""
    buffer = bytearray()
    iterator = response.aiter_raw()
    async for chunk in iterator:
        buffer += chunk
        if len(buffer) >= limit:
            return bytes(buffer), iterator
    return bytes(buffer), None


def _build_client(config: ProxyConfig, provider: Any, clock: SkewedClock) -> httpx.AsyncClient:
    from sigv4_proxy.mcp.runner import build_client

    return build_client(config, provider, clock=clock)


def _reason(status: int) -> bytes:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _display_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


# --- the command ----------------------------------------------------------------------------------------------


def run_http_listener(config: ProxyConfig, options: ListenerOptions, environ: Mapping[str, str] | None = None) -> int:
    """`sigv4-proxy http`: load credentials (failing fast with the proxy's message), serve until a signal."""
    from sigv4_proxy.credentials import describe_credentials
    from sigv4_proxy.logging import setup_logging
    from sigv4_proxy.mcp.runner import SecretRegisteringProvider, credential_provider

    setup_logging(config.log_level, config.log_format)
    provider = SecretRegisteringProvider(credential_provider(config, os.environ if environ is None else environ))
    credentials = provider.get()
    _log_startup(config, options, describe_credentials(credentials, provider.method))
    return asyncio.run(_serve(config, provider, options))


def _log_startup(config: ProxyConfig, options: ListenerOptions, credentials: str) -> None:
    from sigv4_proxy import __version__

    log.info("sigv4-proxy %s: HTTP listener starting", __version__)
    log.info("Target URL: %s", _display_url(config.target_url))
    if config.sig_version == "v4a":
        signing = f"SigV4a, region set {','.join(config.region_set or ('*',))}"
    else:
        signing = f"SigV4, region {config.region} ({config.sources.get('region', 'default')})"
    log.info("Signing: %s, service %s (%s)", signing, config.service, config.sources.get("service_name"))
    log.info("Credentials: %s", credentials)
    details = [f"retries {options.policy.retries}", f"timeout {config.timeout:g}s" if config.timeout else "no timeout"]
    if options.pass_headers:
        details.append("extra forwarded headers: " + ", ".join(sorted(options.pass_headers)))
    if config.headers:
        details.append("added headers: " + ", ".join(name for name, _ in config.headers))
    if options.raw_errors:
        details.append("raw error bodies")
    log.info("Options: %s", "; ".join(details))
    for warning in config.warnings:
        log.warning("%s", warning)


async def _serve(config: ProxyConfig, provider: Any, options: ListenerOptions) -> int:
    listener = HttpListener(config, provider, options)
    try:
        url = await listener.start()
    except OSError as exc:
        from sigv4_proxy.errors import Sigv4ProxyError

        await listener.aclose(grace=0)
        raise Sigv4ProxyError(
            f"cannot listen on {options.host}:{options.port}: {os.strerror(exc.errno) if exc.errno else exc} (is "
            "another process using the port? choose another with --listen, or port 0 for a free one)"
        ) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl-C still interrupts
            loop.add_signal_handler(signum, stop.set)
    log.info("Listening on %s/ -> %s (health: %s%s)", url, _display_url(config.target_url), url, HEALTH_PATH)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: letting requests in flight finish (up to %g s)", SHUTDOWN_GRACE)
        await listener.aclose()
    return 0

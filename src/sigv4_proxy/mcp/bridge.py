"""The bridge: stdin lines -> signed POSTs -> stdout lines, concurrently, with exactly one answer per request.

Flow for each stdin line::

    StdinReader -> classify_line -> dispatch -> send (one task per message) -> transport.post
                                                          |                          |
                                                          v                          v
                                           error for the client  <-  deliver (every upstream message)
                                                          \\___________ StdoutWriter (one writer) ___/

* ``dispatch`` enters requests in the :class:`~sigv4_proxy.mcp.session.PendingRequests` ledger and starts
  one task per message, so a slow call never blocks a ping or a cancellation. Notifications and responses
  are given a moment to go out before the next line is read, to keep their order (``initialized`` before
  the next request) without letting a stuck one stall the client.
* :meth:`Bridge.send` is the one place where an attempt's outcome becomes what the client sees. Retries,
  session recovery, credential refresh and clock-skew correction belong there, around ``transport.post``.
* :meth:`Bridge.deliver` is the one place where upstream messages reach stdout: it resolves the ledger so a
  request answered once is never answered again, and it learns what routing needs from the answers
  (protocol version from ``initialize``, ``x-mcp-header`` annotations from ``tools/list``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sigv4_proxy.logging import get_logger
from sigv4_proxy.mcp import jsonrpc
from sigv4_proxy.mcp.jsonrpc import INVALID_REQUEST, UPSTREAM_ERROR, Envelope, Rejection
from sigv4_proxy.mcp.routing import ToolHeaderMaps
from sigv4_proxy.mcp.session import PendingRequests, SessionState
from sigv4_proxy.mcp.stdio import Line, Oversize, StdinReader, StdoutWriter
from sigv4_proxy.mcp.transport import PostResult, StreamableHttpTransport, Transport

if TYPE_CHECKING:
    import httpx

    from sigv4_proxy.config import ProxyConfig
    from sigv4_proxy.diagnose import Diagnosis, SigningContext

__all__ = ["Bridge", "Failure"]

log = get_logger("mcp")

# How long a notification or response may hold back the next stdin line (ordering vs. liveness).
ORDERING_WAIT_SECONDS = 2.0
SHUTDOWN_GRACE_SECONDS = 5.0


class Failure:
    """Why a message could not be delivered: the text the client reads, plus machine-readable data."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        self.message = message
        self.data = data

    @classmethod
    def from_diagnosis(cls, diagnosis: Diagnosis) -> Failure:
        data: dict[str, Any] = {"kind": diagnosis.kind, "retryable": diagnosis.retryable}
        if diagnosis.status is not None:
            data["status"] = diagnosis.status
        if diagnosis.error_type:
            data["errorType"] = diagnosis.error_type
        return cls(diagnosis.message(), data)


class Bridge:
    """One proxy run: owns the session, the ledger, the transport and the stdio ends."""

    def __init__(
        self,
        config: ProxyConfig,
        client: httpx.AsyncClient,
        *,
        stdin: StdinReader,
        stdout: StdoutWriter,
        signing_context: Callable[[], SigningContext],
        credentials: Any = None,
        grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
    ) -> None:
        self.config = config
        self.client = client
        self.stdin = stdin
        self.stdout = stdout
        self.signing_context = signing_context
        self.credentials = credentials  # the process's one provider (the signer holds the same one)
        self.grace_seconds = grace_seconds
        self.session = SessionState()
        self.pending = PendingRequests()
        self.tool_headers = ToolHeaderMaps()
        self.transport: Transport = self.build_transport()
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()

    def build_transport(self) -> Transport:
        """The upstream transport (the place to choose another one, e.g. legacy HTTP+SSE)."""
        return StreamableHttpTransport(
            self.client,
            self.config.target_url,
            session=self.session,
            deliver=self.deliver,
            extra_headers=self.config.headers,
            tool_headers=self.tool_headers,
        )

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until stdin ends, stdout goes away or :meth:`stop` is called; then shut down cleanly."""
        await self.stdin.start()
        await self.stdout.start()
        reader = asyncio.create_task(self._read_stdin(), name="stdin")
        stopper = asyncio.create_task(self.stopping.wait(), name="stop")
        done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        reason = "stdin closed" if reader in done else self._stop_reason
        for task in (reader, stopper):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        exit_code = 0
        if reader in done and reader.exception() is not None:
            log.error("reading stdin failed: %r", reader.exception())
            exit_code = 1
        await self.shutdown(reason)
        return exit_code

    _stop_reason = "stopped"

    def stop(self, reason: str) -> None:
        self._stop_reason = reason
        self.stopping.set()

    async def shutdown(self, reason: str) -> None:
        """Stop reading, give in-flight requests the grace period, answer the rest, end the session."""
        self.stdin.close()
        in_flight = [task for task in self._tasks if not task.done()]
        log.info("shutting down (%s): %d message(s) in flight", reason, len(in_flight))
        if in_flight:
            _, still_running = await asyncio.wait(in_flight, timeout=self.grace_seconds)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.wait(still_running)
        for pending in self.pending.all():
            if self.pending.resolve(pending.key) is not None and not pending.cancelled:
                text = "the proxy shut down before the server answered this request"
                await self.stdout.write_message(jsonrpc.error_line(pending.id, UPSTREAM_ERROR, text))
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self.transport.terminate()
        await self.stdout.close()

    # -- stdin --------------------------------------------------------------------------------------------

    async def _read_stdin(self) -> None:
        async for item in self.stdin:
            if isinstance(item, Oversize):
                await self._reject_oversize(item)
                continue
            assert isinstance(item, Line)
            if not item.data or item.data.isspace():  # (no strip(): it would copy a 20 MB line)
                continue
            verdict = jsonrpc.classify_line(item.data)
            if isinstance(verdict, Rejection):
                await self._reject(verdict, len(item.data))
                continue
            verdict.rebind(bytes(item.data))  # httpx sends bytes; the line buffer is freed here
            del item
            await self.dispatch(verdict)
            if self.stdout.closed:
                self.stop("stdout closed")
                return

    async def _reject(self, rejection: Rejection, size: int) -> None:
        log.warning("rejected a %d-byte stdin line: %s", size, rejection.message)
        await self.stdout.write_message(rejection.line())

    async def _reject_oversize(self, item: Oversize) -> None:
        limit = self.config.max_message_bytes
        kind, message_id = jsonrpc.truncated_kind(item.prefix)
        text = (
            f"message of {item.size} bytes exceeds the limit of {limit} bytes (--max-message-bytes); "
            "it was not forwarded"
        )
        log.warning("rejected a stdin line: %s", text)
        if kind in ("notification", "response"):
            return  # nothing to answer: JSON-RPC never answers these
        await self.stdout.write_message(jsonrpc.error_line(message_id, INVALID_REQUEST, f"Invalid Request: {text}"))

    async def dispatch(self, message: Envelope) -> None:
        """Start forwarding one client message (see the module docstring for the ordering rule)."""
        if message.kind == "notification" and message.method == "notifications/cancelled" and self._cancel(message):
            return
        if message.kind == "notification" and message.method == "notifications/initialized":
            self.session.initialized_notification = bytes(message.raw)
        requests = message.requests()
        entered = []
        for request in requests:
            pending = self.pending.add(request)
            if pending is None:
                for earlier in entered:
                    self.pending.resolve(earlier.key)
                text = f"Invalid Request: a request with id {request.key} is already in flight"
                await self._reject(Rejection(INVALID_REQUEST, text, request.id), len(message.raw))
                return
            entered.append(pending)
        if message.kind == "request" and message.method == "initialize":
            self.session.begin_initialize(message)
        if message.protocol_version is not None:
            self.session.modern = True
        elif message.kind == "request":
            self.session.modern = False
        task = asyncio.create_task(self.send(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        for pending in entered:
            pending.task = task
        if not requests:
            await asyncio.wait({task}, timeout=ORDERING_WAIT_SECONDS)

    def _cancel(self, message: Envelope) -> bool:
        """Client-side cancellation. True when the notification must not be forwarded."""
        if message.cancelled_id is None:
            return False
        pending = self.pending.get(jsonrpc.id_key(message.cancelled_id))
        if pending is None:
            # At 2026 the wire has no client notifications: a late cancel is simply dropped.
            return self.session.modern
        pending.cancelled = True
        if not pending.modern:
            return False  # handshake-era servers learn of it from the forwarded notification
        # 2026 wire: closing the request's response stream is the cancellation.
        self.pending.resolve(pending.key)
        if pending.task is not None:
            pending.task.cancel()
        log.debug("cancelled %s id=%s by closing its stream", pending.method, pending.key)
        return True

    # -- upstream -----------------------------------------------------------------------------------------

    async def send(self, message: Envelope) -> None:
        """Forward one client message and settle what the client is owed for it.

        The single place where an attempt's outcome becomes the client's answer. Every request the message
        carries ends up answered exactly once: by the server (through :meth:`deliver`) or here, with an
        error that says what went wrong and how to fix it. Recovery (retries with backoff, a new session
        after a 404, refreshed credentials after ExpiredToken, a corrected clock after a skew error) wraps
        :meth:`attempt` here: the :class:`PostResult` carries what those decisions need (status, headers,
        error, how many messages were already delivered).
        """
        is_initialize = message.kind == "request" and message.method == "initialize"
        try:
            if not is_initialize:
                await self.session.wait_ready()
            result = await self.attempt(message)
            if result.ok:
                self._after_success(message)
            else:
                await self.settle_failure(message, result)
        finally:
            if is_initialize:
                self.session.end_initialize()

    async def attempt(self, message: Envelope) -> PostResult:
        """One POST of ``message``. Failures of any kind come back in the result, never as exceptions."""
        try:
            return await self.transport.post(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # credentials that cannot be refreshed, a request that cannot be signed, ...
            return PostResult(error=exc)

    def _after_success(self, message: Envelope) -> None:
        if message.kind == "request" and message.method == "initialize":
            log.info("MCP session established (%s)", self.session.describe())
        if message.method == "notifications/initialized" and self.config.sse:
            self.start_listener()

    async def settle_failure(self, message: Envelope, result: PostResult) -> None:
        """Tell the client (requests) or the log (notifications, responses) why ``message`` failed."""
        if result.error is not None:
            await self.fail(message, self._exception_failure(result.error))
            return
        assert result.status is not None
        if result.status >= 400:
            if await self._forward_jsonrpc_error(message, result):
                return
            await self.fail(message, self._http_failure(message, result))
            return
        from sigv4_proxy.mcp.transport import PROBLEM_STREAM_ENDED

        reason = result.problem or PROBLEM_STREAM_ENDED
        await self.fail(message, Failure(reason, {"kind": "unexpected_response", "status": result.status}))

    async def _forward_jsonrpc_error(self, message: Envelope, result: PostResult) -> bool:
        """A JSON-RPC error in an HTTP error body (a spec-correct server does that) goes to the client as is."""
        if not message.requests() or not result.body or (result.status == 404 and self.session.session_id):
            return False
        try:
            envelope = jsonrpc.peek(result.body)
        except ValueError:
            return False
        if envelope.kind != "response" or not envelope.is_error:
            return False
        requests = message.requests()
        if envelope.id is None and len(requests) == 1:
            from sigv4_proxy.mcp.transport import with_id

            data = with_id(result.body, requests[0].id)
            envelope = jsonrpc.peek(data)
        else:
            data = result.body
        if envelope.key not in self.pending:
            return False
        log.debug("forwarding the server's JSON-RPC error (HTTP %s) for id=%s", result.status, envelope.key)
        await self.deliver(data, envelope, message)
        return not any(request.key in self.pending for request in requests)

    def _http_failure(self, message: Envelope, result: PostResult) -> Failure:
        assert result.status is not None
        if result.status == 404 and self.session.session_id and message.method != "initialize":
            return Failure(
                f"HTTP 404: the server no longer knows MCP session {self.session.session_id} (it restarted or "
                "expired the session). Diagnosis: restart the MCP client's connection to start a new session.",
                {"kind": "session_expired", "status": 404, "retryable": False},
            )
        from sigv4_proxy.diagnose import diagnose_response

        diagnosis = diagnose_response(result.status, result.headers, result.body, context=self.signing_context())
        return Failure.from_diagnosis(diagnosis)

    def _exception_failure(self, exc: BaseException) -> Failure:
        from sigv4_proxy.diagnose import diagnose_exception

        return Failure.from_diagnosis(diagnose_exception(exc, context=self.signing_context()))

    async def fail(self, message: Envelope, failure: Failure) -> None:
        """Answer every still-unanswered request in ``message`` with ``failure``; log the rest."""
        requests = message.requests()
        if not requests:
            log.warning("%s not delivered: %s", _describe(message), failure.message)
            return
        for request in requests:
            pending = self.pending.resolve(request.key)
            if pending is None:
                continue  # answered already
            if pending.cancelled:
                log.debug("%s id=%s ended after the client cancelled it", pending.method, pending.key)
                continue
            log.warning("%s id=%s failed: %s", pending.method, pending.key, failure.message)
            line = jsonrpc.error_line(request.id, UPSTREAM_ERROR, failure.message, failure.data)
            await self.stdout.write_message(line)

    async def deliver(self, data: bytes | bytearray, envelope: Envelope, via: Envelope | None) -> None:
        """Write one upstream message to stdout, unless it answers a request that is answered already."""
        keys = _response_keys(envelope)
        for key in keys:
            pending = self.pending.resolve(key)
            if pending is None:
                log.warning("dropped a response for id=%s: no request with that id is waiting for one", key)
                if envelope.kind == "response":
                    return
                continue
            self._observe(pending.method, envelope)
        await self.stdout.write_message(data)

    def _observe(self, method: str, envelope: Envelope) -> None:
        """Learn what routing needs from answers passing through."""
        if envelope.kind != "response" or envelope.is_error:
            return
        if method == "initialize":
            result = envelope.result(limit=1 << 20)
            version = result.get("protocolVersion") if isinstance(result, dict) else None
            if isinstance(version, str):
                self.session.protocol_version = version
        elif method == "tools/list" and b"x-mcp-header" in envelope.raw:
            self.tool_headers.learn(envelope.result())

    # -- standalone stream --------------------------------------------------------------------------------

    def start_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="standalone-stream")

    async def _listen(self) -> None:
        if not self.session.session_id:
            log.debug("no session id: the standalone event stream is not opened")
            return
        try:
            result = await self.transport.listen()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("standalone event stream failed: %s", self._exception_failure(exc).message)
            return
        if result.status == 405:
            log.debug("the server offers no standalone event stream (HTTP 405)")
        elif result.status is not None and result.status >= 400:
            log.warning("standalone event stream refused: %s", self._http_failure(_LISTEN, result).message)
        elif result.problem:
            log.warning("standalone event stream: %s", result.problem)
        else:
            log.info("standalone event stream closed by the server")


_LISTEN = Envelope(raw=b"", kind="notification", method="GET")


def _response_keys(envelope: Envelope) -> list[str]:
    if envelope.kind == "response":
        return [envelope.key]
    if envelope.kind == "batch":
        return [member.key for member in envelope.members if member.kind == "response"]
    return []


def _describe(message: Envelope) -> str:
    if message.kind == "response":
        return f"response id={message.key}"
    if message.kind == "batch":
        return f"batch of {len(message.members)} messages"
    return message.method or message.kind

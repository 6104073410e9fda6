"""The verifying front: an ASGI app that judges every request the way API Gateway does, then forwards it.

For each HTTP request it reads the body (bounded), verifies the signature with the core's
:func:`sigv4_proxy.verify` on the emulator's clock, and either answers with AWS's error shape (403 with
``x-amzn-ErrorType`` and ``{"message": ...}``) or forwards the request, without its signing headers, to the
backend (the built-in MCP server or an upstream one), streaming the response back. Faults from the
:class:`~sigv4_proxy.emulate.faults.FaultPlan` apply to verified requests only. Every response carries a
``Date`` header from the emulator's (possibly skewed) clock and an ``x-amzn-RequestId``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import format_datetime
from typing import Any, Protocol

import anyio
from anyio.abc import TaskStatus

from sigv4_proxy.emulate.faults import (
    Delay,
    Drop,
    RequestInfo,
    Respond,
    SseEventCounter,
    aws_error,
    describe_request,
)
from sigv4_proxy.emulate.log import RequestRecord, masked_scope
from sigv4_proxy.emulate.state import EmulatorState, Sigv4aPolicy
from sigv4_proxy.signing.algorithm import V4, V4A, Algorithm, algorithm_named
from sigv4_proxy.signing.verify import Reason

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

EXPIRED_TOKEN_MESSAGE = "The security token included in the request is expired"
#: Request headers that carry the signature; the MCP server behind the front never sees them.
SIGNING_HEADERS = frozenset(
    {b"authorization", b"x-amz-date", b"x-amz-security-token", b"x-amz-content-sha256", b"x-amz-region-set"}
)
_NOT_VERIFIED_REASONS: frozenset[Reason] = frozenset({"missing", "malformed", "algorithm"})
#: The signature algorithms each ``--sigv4a`` policy takes, the first one being what the refusal asks for.
_ACCEPTED_ALGORITHMS: dict[Sigv4aPolicy, tuple[Algorithm, ...]] = {
    "accept": (V4, V4A),
    "require": (V4A,),
    "reject": (V4,),
}


class Backend(Protocol):
    """Where verified requests go: the built-in MCP server or an upstream one."""

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start, report ``task_status.started()``, and serve until cancelled."""

    async def restart(self) -> None:
        """Forget all state (sessions), as a restarted server would."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


def abort_connection(send: Send) -> bool:
    """Abort the TCP connection under an ASGI ``send`` (uvicorn's cycle keeps its transport there).

    ASGI has no "reset" message; a clean close would look like a finished response. Returns False when the
    server is not uvicorn (the caller then just stops sending, which closes the connection uncleanly too).
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        return False
    transport.abort()
    return True


class _ResponseWriter:
    """Wraps the server's ``send``: adds the emulator headers, applies a Drop fault, logs the response start."""

    def __init__(
        self,
        send: Send,
        state: EmulatorState,
        on_start: Callable[[int], None],
        drop: Drop | None,
        cancel_scope: anyio.CancelScope,
    ) -> None:
        self._send = send
        self._cancel_scope = cancel_scope
        self._state = state
        self._on_start = on_start
        self._drop = drop
        self._events = SseEventCounter() if drop is not None else None
        self.started = False
        self.complete = False
        self.dropped = False
        self._lose_response = False

    async def send(self, message: Message) -> None:
        if self.dropped:
            await anyio.sleep_forever()  # only reached if the backend shields itself from the cancellation
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body":
            await self._body(message)
        else:
            await self._send(message)

    async def _start(self, message: Message) -> None:
        self.started = True
        self._on_start(int(message["status"]))
        headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
        if self._drop is not None:
            content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            if self._drop.after_events == 0 or not content_type.startswith(b"text/event-stream"):
                # the whole answer is lost (a JSON answer has no events to cut after): swallow, reset at its end
                self._lose_response = True
                return
        await self._send({**message, "headers": headers + emulator_headers(self._state)})

    async def _body(self, message: Message) -> None:
        last = not message.get("more_body", False)
        if self._lose_response:
            if last:
                await self._abort()
            return
        if self._events is not None and self._drop is not None:
            body = message.get("body", b"")
            cut = self._events.cut(body, self._drop.after_events)
            if cut is not None:
                if cut:
                    await self._send({"type": "http.response.body", "body": body[:cut], "more_body": True})
                await self._abort()
        self.complete = last
        await self._send(message)

    async def _abort(self) -> None:
        """Reset the connection and end the backend's handling of this request the way a client that went
        away would: by cancellation (the MCP SDK treats an exception raised from ``send`` as its own crash)."""
        self.dropped = True
        abort_connection(self._send)
        self._cancel_scope.cancel()
        await anyio.sleep(0)  # the cancellation is delivered here


def algorithm_refusal(algorithm: str | None, policy: Sigv4aPolicy) -> Respond | None:
    """How a service that does not take `algorithm` refuses it, or None when `policy` takes it (or the request
    named none). AWS's own services answer so (API Gateway, Lambda and the other "coral" services check the
    algorithm before the credential scope): 403 IncompleteSignatureException "Unsupported AWS 'algorithm':
    'AWS4-ECDSA-P256-SHA256' (only AWS4-HMAC-SHA256 for now). "."""
    accepted = _ACCEPTED_ALGORITHMS[policy]
    if not algorithm or algorithm_named(algorithm) in accepted:
        return None
    message = f"Unsupported AWS 'algorithm': '{algorithm}' (only {accepted[0].name} for now). "
    return aws_error(403, "IncompleteSignatureException", message)


def emulator_headers(state: EmulatorState) -> list[tuple[bytes, bytes]]:
    date = format_datetime(state.now(), usegmt=True)
    return [(b"date", date.encode()), (b"x-amzn-requestid", str(uuid.uuid4()).encode())]


class VerifyingFront:
    """The ASGI app uvicorn serves: lifespan starts the backend; HTTP requests are verified, then forwarded."""

    def __init__(self, state: EmulatorState, backend: Backend) -> None:
        self.state = state
        self.backend = backend
        self.loop: asyncio.AbstractEventLoop | None = None
        self._inflight: set[anyio.CancelScope] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    # -- lifespan ---------------------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        self.loop = asyncio.get_running_loop()
        async with anyio.create_task_group() as tasks:
            try:
                await tasks.start(self.backend.run)
            except Exception as exc:  # the backend could not start: uvicorn reports it and exits
                await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                return
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            self.cancel_inflight()
            tasks.cancel_scope.cancel()
        await send({"type": "lifespan.shutdown.complete"})

    def cancel_inflight(self) -> None:
        """End every request in flight, aborting its connection (call on the server's loop)."""
        for cancel_scope in list(self._inflight):
            cancel_scope.cancel()

    async def restart(self) -> None:
        """Simulate a server restart: the backend forgets its sessions and in-flight requests are cut."""
        await self.backend.restart()
        self.cancel_inflight()

    # -- requests ---------------------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        body = await _read_body(receive, self.state.max_body_bytes)
        if body is None:
            limit = self.state.max_body_bytes
            self._log(method, path, "-", 413, "RequestEntityTooLarge", "body_too_large")
            await self._answer(send, aws_error(413, None, f"Request body is larger than {limit} bytes"))
            return
        info = describe_request(method, path, body)
        verdict = self._verify(scope, body, info)
        if verdict is not None:
            response, record = verdict
            self.state.log.add(record)  # before answering: a client that got its answer finds it logged
            await self._answer(send, response)
            return
        await self._forward(scope, receive, send, body, info)

    def _verify(self, scope: Scope, body: bytes, info: RequestInfo) -> tuple[Respond, RequestRecord] | None:
        """None when the request may pass; otherwise the AWS-shaped refusal and its log record."""
        from sigv4_proxy.signing.verify import verify

        now = self.state.now()
        method: str = scope["method"]
        result = verify(
            method,
            request_target(scope),
            # latin-1, as WSGI, Starlette and http.client map HTTP header bytes to text: one character per byte,
            # so every byte is judged as received and none can fail to decode. A Python client that signed a
            # value's text and sent it through http.client (latin-1 on the wire) verifies here as at AWS.
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            body,
            credentials_for=self.state.credentials.lookup,
            now=now,
            region=self.state.region,
            service=self.state.service,
            max_skew_seconds=self.state.max_skew_seconds,
        )
        scope_text = masked_scope(result.access_key_id, result.amz_date, result.region, result.service)
        scope["sigv4_proxy.scope"] = scope_text
        scope["sigv4_proxy.algorithm"] = result.algorithm or ""
        refusal = algorithm_refusal(result.algorithm, self.state.sigv4a)
        if refusal is not None:
            reason = "sigv4a_required" if self.state.sigv4a == "require" else "sigv4a_rejected"
            return refusal, self._record(scope, refusal.status, "IncompleteSignatureException", reason, info)
        if (
            result.access_key_id
            and result.reason not in _NOT_VERIFIED_REASONS
            and self.state.credentials.is_expired(result.access_key_id, now)
        ):
            response = aws_error(403, "ExpiredTokenException", EXPIRED_TOKEN_MESSAGE)
            return response, self._record(scope, 403, "ExpiredTokenException", "expired_token", info)
        if result.ok:
            return None
        status, headers, payload = result.to_response()
        response = Respond(status, tuple(headers), payload)
        return response, self._record(scope, status, result.error_type or "Forbidden", result.reason, info)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, body: bytes, info: RequestInfo) -> None:
        action = self.state.faults.take(info)
        fault = action.label if action is not None else ""
        if isinstance(action, Respond):
            self.state.log.add(self._record(scope, action.status, "ok", "ok", info, fault))
            await self._answer(send, action)
            return
        if isinstance(action, Drop) and not action.forward:
            self.state.log.add(self._record(scope, 0, "ok", "ok", info, fault))
            abort_connection(send)
            await asyncio.sleep(0)
            return
        if isinstance(action, Delay):
            await anyio.sleep(action.seconds)

        logged = False

        def on_start(status: int) -> None:
            nonlocal logged
            logged = True
            self.state.log.add(self._record(scope, status, "ok", "ok", info, fault))

        drop = action if isinstance(action, Drop) else None
        inner_scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() not in SIGNING_HEADERS]}
        with anyio.CancelScope() as cancel_scope:
            writer = _ResponseWriter(send, self.state, on_start, drop, cancel_scope)
            self._inflight.add(cancel_scope)
            try:
                await self.backend(inner_scope, _replay(body, receive), writer.send)
            finally:
                self._inflight.discard(cancel_scope)
        if not logged:
            self.state.log.add(self._record(scope, 0, "ok", "ok", info, fault or "cut by restart"))
        if not writer.complete and not writer.dropped:
            # a restart (or a backend that gave up) cut the response: the client sees the connection die
            abort_connection(send)
            await asyncio.sleep(0)

    async def _answer(self, send: Send, response: Respond) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers if k.lower() != "date"]
        headers.append((b"content-length", str(len(response.body)).encode()))
        headers.extend(emulator_headers(self.state))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body, "more_body": False})

    def _record(
        self,
        scope: Scope,
        status: int,
        verdict: str,
        reason: str,
        info: RequestInfo | None = None,
        fault: str = "",
    ) -> RequestRecord:
        return RequestRecord(
            time=self.state.now(),
            method=scope["method"],
            path=scope["path"],
            scope=scope.get("sigv4_proxy.scope", "-"),
            status=status,
            verdict=verdict,
            reason=reason,
            rpc=info.summary if info is not None else "",
            fault=fault,
            algorithm=scope.get("sigv4_proxy.algorithm", ""),
        )

    def _log(self, method: str, path: str, scope_text: str, status: int, verdict: str, reason: str) -> None:
        self.state.log.add(
            RequestRecord(
                time=self.state.now(),
                method=method,
                path=path,
                scope=scope_text,
                status=status,
                verdict=verdict,
                reason=reason,
            )
        )


def request_target(scope: Scope) -> str:
    """Path and query exactly as the client sent them (the signature covers their encoding)."""
    # The request target is ASCII on the wire (RFC 9112: non-ASCII is percent-encoded); latin-1 keeps a stray
    # byte as one character instead of failing on it, like the headers above.
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the backend the body the front already read, then the real events."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

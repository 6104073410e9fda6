"""Running the emulator: configuration, the ASGI app, a thread-based handle for tests, and a foreground server.

:func:`start_mcp` returns a :class:`McpEmulator` serving on a background thread (its own event loop), so
sync tests, async tests, benchmarks, `doctor` and `demo` all use it the same way::

    with start_mcp() as emulator:           # fresh random credentials, free loopback port
        emulator.url, emulator.credentials, emulator.region, emulator.service
        emulator.fail_next(503, times=2)    # fault knobs: see McpEmulator
        emulator.requests                   # the request log (never signatures)

:func:`serve_forever` runs the same app in the foreground for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from sigv4_proxy.emulate.backends import DEFAULT_PATHS, BuiltinBackend, Transport, UpstreamBackend
from sigv4_proxy.emulate.credentials import (
    AcceptedCredentials,
    CredentialsResolver,
    credentials_environment,
    generate_credentials,
)
from sigv4_proxy.emulate.faults import Delay, Drop, FaultRule, Match, Respond, aws_error
from sigv4_proxy.emulate.front import VerifyingFront
from sigv4_proxy.emulate.log import RequestLog, RequestRecord
from sigv4_proxy.emulate.state import (
    DEFAULT_MAX_BODY_BYTES,
    SIGV4A_POLICIES,
    EmulatorState,
    ExecutionCounter,
    Sigv4aPolicy,
)
from sigv4_proxy.endpoints import host_port
from sigv4_proxy.signing.model import Credentials

DEFAULT_REGION = "us-east-1"
DEFAULT_SERVICE = "execute-api"
_START_TIMEOUT = 15.0
EMULATED_PRINCIPAL = "arn:aws:iam::123456789012:user/sigv4-proxy-emulator"
INVOKE_ACTIONS = {
    "execute-api": "execute-api:Invoke",
    "lambda": "lambda:InvokeFunctionUrl",
    "bedrock-agentcore": "bedrock-agentcore:InvokeAgentRuntime",
}


#: Which signature algorithms requests may use, in words, for each ``--sigv4a`` policy.
SIGNATURES: dict[Sigv4aPolicy, str] = {
    "accept": "SigV4 and SigV4a",
    "require": "SigV4a only (SigV4 requests are refused)",
    "reject": "SigV4 only (SigV4a requests are refused)",
}


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything `emulate mcp` can be told. ``credentials`` empty means: generate one random set."""

    host: str = "127.0.0.1"
    port: int = 0
    region: str = DEFAULT_REGION
    service: str = DEFAULT_SERVICE
    credentials: tuple[Credentials, ...] = ()
    upstream: str | None = None
    transport: Transport = "streamable-http"
    path: str | None = None
    stateless: bool = False
    json_response: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_skew_seconds: int = 300
    sigv4a: Sigv4aPolicy = "accept"
    credentials_resolver: CredentialsResolver | None = field(default=None, compare=False)

    @property
    def url_path(self) -> str:
        if self.upstream is not None:
            return UpstreamBackend.path_of(self.upstream)
        return self.path or DEFAULT_PATHS[self.transport]

    def describe_backend(self) -> str:
        if self.upstream is not None:
            return f"forwarding to {self.upstream}"
        if self.transport == "sse":
            return "built-in MCP server, legacy HTTP+SSE transport (2024-11-05)"
        mode = "stateless" if self.stateless else "stateful"
        responses = "JSON responses" if self.json_response else "SSE responses"
        return f"built-in MCP server, Streamable HTTP, {mode}, {responses}"


def build_app(config: EmulatorConfig, on_record: Callable[[RequestRecord], None] | None = None) -> VerifyingFront:
    """The verifying front with its backend, ready for any ASGI server."""
    credentials = config.credentials or (generate_credentials(),)
    state = EmulatorState(
        region=config.region,
        service=config.service,
        credentials=AcceptedCredentials(credentials, resolver=config.credentials_resolver),
        log=RequestLog(on_record),
        executions=ExecutionCounter(),
        max_body_bytes=config.max_body_bytes,
        max_skew_seconds=config.max_skew_seconds,
        sigv4a=config.sigv4a,
    )
    backend: BuiltinBackend | UpstreamBackend
    if config.upstream is not None:
        backend = UpstreamBackend(state, config.upstream)
    else:
        backend = BuiltinBackend(
            state,
            transport=config.transport,
            path=config.path,
            stateless=config.stateless,
            json_response=config.json_response,
        )
    return VerifyingFront(state, backend)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one); IPv6 literals welcome."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Real endpoints disable Nagle's algorithm; asyncio does so only for sockets it creates itself. Accepted
    # sockets inherit it, so a response's head and body are not held back for the client's delayed ACK (~40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def format_url(host: str, port: int, path: str) -> str:
    return f"http://{host_port(host, port)}{path}"


def _uvicorn_server(app: VerifyingFront, *, exit_quietly_on_signals: bool = False) -> Any:
    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn re-raises SIGINT/SIGTERM after shutting down; a CLI server should just exit 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if not exit_quietly_on_signals or threading.current_thread() is not threading.main_thread():
                with super().capture_signals():
                    yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self._quiet_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

        def _quiet_exit(self, sig: int, frame: object) -> None:
            if self.should_exit:
                self.force_exit = True  # a second Ctrl-C: do not wait for open streams
            self.should_exit = True

    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,  # the front sets Date from the emulator's clock
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
        ws="none",
    )
    return _Server(config)


class McpEmulator:
    """A running emulator (background thread) with its request log and fault-injection knobs.

    Attributes: ``url`` (the MCP endpoint), ``base_url``, ``host``, ``port``, ``region``, ``service``,
    ``credentials`` (the first accepted set; generated when none were given), ``state``.

    Fault knobs apply to requests whose signature verified, in arrival order; each returns the rule so a
    test can check ``rule.applied``. ``match`` narrows a rule: ``Match(rpc_method="tools/call")``,
    ``Match(tool="echo")``, ``Match(http_method="GET")``, ``Match(path="/mcp")``.
    """

    def __init__(self, config: EmulatorConfig, on_record: Callable[[RequestRecord], None] | None = None) -> None:
        self.config = config
        self.front = build_app(config, on_record)
        self.state = self.front.state
        self.region = config.region
        self.service = config.service
        self.credentials = self.state.credentials.all()[0]
        self._socket = bind_socket(config.host, config.port)
        self.host = config.host
        self.port: int = self._socket.getsockname()[1]
        self.base_url = format_url(self.host, self.port, "")
        self.url = self.base_url + config.url_path
        self._server = _uvicorn_server(self.front)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"emulate-mcp:{self.port}", daemon=True)

    # -- lifecycle --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # reported by start()/close()
            self._error = exc

    def start(self) -> McpEmulator:
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the emulator failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("the emulator did not start within 15 seconds")
            time.sleep(0.005)
        return self

    def close(self) -> None:
        """Stop serving: in-flight requests are cut, then the server shuts down (idempotent)."""
        if not self._thread.is_alive():
            self._socket.close()
            return
        with contextlib.suppress(Exception):
            self._call(self._cancel_inflight(), timeout=5)
        self._server.should_exit = True
        self._thread.join(10)
        if self._thread.is_alive():  # a connection that will not close: stop waiting for it
            self._server.force_exit = True
            self._thread.join(5)
        self._socket.close()

    def __enter__(self) -> McpEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> McpEmulator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.close)

    async def _cancel_inflight(self) -> None:
        self.front.cancel_inflight()

    def _call(self, coroutine: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the server's loop from any other thread and wait for it."""
        loop = self.front.loop
        if loop is None:
            coroutine.close()
            raise RuntimeError("the emulator is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    # -- observation ------------------------------------------------------------------------------------------

    @property
    def log(self) -> RequestLog:
        return self.state.log

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request so far: method, path, masked credential scope, status, verdict, reason."""
        return self.state.log.records()

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RequestRecord]:
        return self.state.log.wait_for(count, timeout)

    @property
    def executions(self) -> ExecutionCounter:
        """Tool executions per JSON-RPC request id (built-in server only)."""
        return self.state.executions

    def env(self, credentials: Credentials | None = None) -> dict[str, str]:
        """Environment variables for `sigv4-proxy` (or any AWS SDK) to reach this emulator."""
        target = {"MCP_TARGET_URL": self.url, "AWS_REGION": self.region, "AWS_SERVICE_NAME": self.service}
        return {**target, **credentials_environment(credentials or self.credentials)}

    # -- faults -----------------------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | Sequence[tuple[str, str]] = (),
        body: bytes | str | dict[str, Any] | None = None,
        error_type: str | None = None,
        match: Match | None = None,
    ) -> FaultRule:
        """Answer the next ``times`` matching requests with ``status`` instead of forwarding them.

        ``body``: bytes/str as is, a dict as JSON, None for an empty body (with ``error_type`` and no body,
        the API Gateway shape ``{"message": <reason phrase>}``). Examples: ``fail_next(502)``,
        ``fail_next(424, times=2)``, ``fail_next(200)`` (an empty 200), ``fail_next(404, body=...)``.
        """
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
        if error_type is not None and body is None:
            return self.state.faults.add(
                aws_error(status, error_type, _reason_phrase(status), pairs), times=times, match=match
            )
        if isinstance(body, dict):
            payload = json.dumps(body).encode()
            pairs.append(("content-type", "application/json"))
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = body or b""
        if error_type is not None:
            pairs.append(("x-amzn-ErrorType", error_type))
        return self.state.faults.add(Respond(status, tuple(pairs), payload), times=times, match=match)

    def throttle_next(self, *, times: int = 1, retry_after: float | None = 1, match: Match | None = None) -> FaultRule:
        """429 ``TooManyRequestsException`` "Too Many Requests", with ``Retry-After`` (seconds) when given."""
        headers = [("Retry-After", f"{retry_after:g}")] if retry_after is not None else []
        rule = aws_error(429, "TooManyRequestsException", "Too Many Requests", headers)
        return self.state.faults.add(rule, times=times, match=match)

    def deny_next(
        self,
        *,
        times: int = 1,
        principal: str = EMULATED_PRINCIPAL,
        action: str | None = None,
        resource: str | None = None,
        match: Match | None = None,
    ) -> FaultRule:
        """403 ``AccessDeniedException`` as API Gateway sends when the signature is fine but IAM denies:
        ``{"Message": "User: <principal> is not authorized to perform: <action> on resource: <resource>"}``
        (capital ``Message``, as API Gateway writes it). The action defaults to the service's invoke action
        (``execute-api:Invoke``, ``lambda:InvokeFunctionUrl``, ``bedrock-agentcore:InvokeAgentRuntime``)."""
        action = action or INVOKE_ACTIONS.get(self.service, f"{self.service}:Invoke")
        # API Gateway masks the account id of the resource ARN, keeping its last four digits (as here).
        resource = resource or f"arn:aws:{self.service}:{self.region}:********9012:emulator/prod/*"
        message = f"User: {principal} is not authorized to perform: {action} on resource: {resource}"
        body = json.dumps({"Message": message}).encode()
        headers = (("content-type", "application/json"), ("x-amzn-ErrorType", "AccessDeniedException"))
        return self.state.faults.add(Respond(403, headers, body), times=times, match=match)

    def session_not_found_next(self, *, times: int = 1, match: Match | None = None) -> FaultRule:
        """404 with the MCP SDK's "Session not found" JSON-RPC error, as a server that forgot the session."""
        body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Session not found"}}
        return self.fail_next(404, body=body, times=times, match=match)

    def drop_next(
        self, *, times: int = 1, after_events: int = 0, forward: bool = True, match: Match | None = None
    ) -> FaultRule:
        """Abort the connection of the next ``times`` matching requests.

        ``forward=False``: before the server sees the request (it is never executed). ``after_events=N``: right
        after the N-th complete SSE event of the response (a reset mid-stream; a JSON response, having no
        events, is lost whole). ``after_events=0`` (default):
        the server handles the request in full, its response is lost, the connection is reset: the request
        was executed but the client cannot know it.
        """
        return self.state.faults.add(Drop(forward=forward, after_events=after_events), times=times, match=match)

    def delay_next(self, seconds: float, *, times: int = 1, match: Match | None = None) -> FaultRule:
        """Wait ``seconds`` before forwarding the next ``times`` matching requests."""
        return self.state.faults.add(Delay(seconds), times=times, match=match)

    def clear_faults(self) -> None:
        self.state.faults.clear()

    def forget_sessions(self) -> None:
        """Simulate a server restart: all sessions are forgotten (their ids answer 404 from now on) and every
        request in flight, open SSE streams included, has its connection cut."""
        self._call(self.front.restart())

    # -- credentials and clock --------------------------------------------------------------------------------

    def accept(self, credentials: Credentials) -> None:
        """Also accept these credentials (until ``credentials.expiry``, on the emulator's clock)."""
        self.state.credentials.accept(credentials)

    def accept_only(self, *credentials: Credentials) -> None:
        """Accept exactly these credentials; requests signed with any other key get UnrecognizedClient."""
        self.state.credentials.accept_only(credentials)

    def rotate_credentials(
        self, *, session_token: bool = False, expires_in: float | None = None, keep_old: bool = False
    ) -> Credentials:
        """Generate new credentials and accept them (only them, unless ``keep_old``); returns them."""
        expiry = self.now() + timedelta(seconds=expires_in) if expires_in is not None else None
        new = generate_credentials(session_token=session_token, expiry=expiry)
        if keep_old:
            self.state.credentials.accept(new)
        else:
            self.state.credentials.accept_only([new])
        return new

    def expire_credentials(self, access_key_id: str | None = None, *, at: datetime | None = None) -> None:
        """Make a key (default: ``credentials``) expire now or ``at``: requests signed with it then get 403
        ``ExpiredTokenException`` "The security token included in the request is expired"."""
        self.state.credentials.expire(access_key_id or self.credentials.access_key_id, at or self.now())

    def set_credentials_resolver(self, resolver: CredentialsResolver | None) -> None:
        """Ask ``resolver(access_key_id)`` about keys the emulator does not hold (None: unknown)."""
        self.state.credentials.set_resolver(resolver)

    def now(self) -> datetime:
        """The emulator's clock (real time plus ``clock_offset``)."""
        return self.state.now()

    @property
    def clock_offset(self) -> float:
        """Seconds the emulator's clock is ahead of real time (negative: behind). Verification and the
        ``Date`` header both use the skewed clock, as a server with a wrong clock would."""
        return self.state.clock_offset_seconds

    @clock_offset.setter
    def clock_offset(self, seconds: float) -> None:
        self.state.clock_offset_seconds = float(seconds)

    @property
    def sigv4a(self) -> Sigv4aPolicy:
        """Which signature algorithms are taken: ``accept`` (both), ``require`` (SigV4a only), ``reject`` (SigV4
        only); a refused one gets 403 IncompleteSignatureException "Unsupported AWS 'algorithm': ..."."""
        return self.state.sigv4a

    @sigv4a.setter
    def sigv4a(self, policy: Sigv4aPolicy) -> None:
        self.state.sigv4a = _checked_policy(policy)


def _checked_policy(policy: str) -> Sigv4aPolicy:
    for known in SIGV4A_POLICIES:
        if policy == known:
            return known
    raise ValueError(f"sigv4a must be one of {', '.join(SIGV4A_POLICIES)}, got: {policy!r}")


def _reason_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def start_mcp(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    region: str = DEFAULT_REGION,
    service: str = DEFAULT_SERVICE,
    credentials: Credentials | Iterable[Credentials] | None = None,
    upstream: str | None = None,
    transport: Transport = "streamable-http",
    path: str | None = None,
    stateless: bool = False,
    json_response: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    credentials_resolver: CredentialsResolver | None = None,
    on_record: Callable[[RequestRecord], None] | None = None,
    sigv4a: Sigv4aPolicy = "accept",
) -> McpEmulator:
    """Start an IAM-verifying MCP endpoint on a background thread and return its handle (a context manager,
    sync or async). Defaults: loopback, a free port, us-east-1, execute-api, fresh random credentials, the
    built-in MCP server on stateful Streamable HTTP with SSE responses, SigV4 and SigV4a both accepted
    (``sigv4a="reject"``: SigV4 only, as most services; ``"require"``: SigV4a only)."""
    if isinstance(credentials, Credentials):
        creds: tuple[Credentials, ...] = (credentials,)
    else:
        creds = tuple(credentials or ())
    config = EmulatorConfig(
        host=host,
        port=port,
        region=region,
        service=service,
        credentials=creds,
        upstream=upstream,
        transport=transport,
        path=path,
        stateless=stateless,
        json_response=json_response,
        max_body_bytes=max_body_bytes,
        sigv4a=_checked_policy(sigv4a),
        credentials_resolver=credentials_resolver,
    )
    return McpEmulator(config, on_record).start()


async def serve_forever(
    config: EmulatorConfig,
    *,
    on_ready: Callable[[McpEmulatorInfo], None],
    on_record: Callable[[RequestRecord], None] | None = None,
    clock_offset: float = 0.0,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM, then return (exit quietly)."""
    front = build_app(config, on_record)
    front.state.clock_offset_seconds = clock_offset
    sock = bind_socket(config.host, config.port)
    port = sock.getsockname()[1]
    server = _uvicorn_server(front, exit_quietly_on_signals=True)
    info = McpEmulatorInfo(
        url=format_url(config.host, port, config.url_path),
        region=config.region,
        service=config.service,
        credentials=front.state.credentials.all()[0],
        generated=not config.credentials,
        backend=config.describe_backend(),
        sigv4a=config.sigv4a,
    )

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.01)
        on_ready(info)

    announcer = asyncio.create_task(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()
        sock.close()
    if not server.started:
        raise RuntimeError("the emulator failed to start (see the log above)")


@dataclass(frozen=True)
class McpEmulatorInfo:
    """What the CLI prints when the emulator is ready."""

    url: str
    region: str
    service: str
    credentials: Credentials
    generated: bool
    backend: str
    sigv4a: Sigv4aPolicy = "accept"

    @property
    def signatures(self) -> str:
        """Which signature algorithms requests may use, in words."""
        return SIGNATURES[self.sigv4a]

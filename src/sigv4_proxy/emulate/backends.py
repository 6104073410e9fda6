"""What the verifying front forwards to: the built-in MCP server, or any upstream MCP server over HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
from anyio.abc import TaskGroup, TaskStatus

from sigv4_proxy.emulate.faults import aws_error
from sigv4_proxy.emulate.front import Receive, Scope, Send, request_target
from sigv4_proxy.emulate.state import EmulatorState

Transport = Literal["streamable-http", "sse"]
DEFAULT_PATHS: dict[str, str] = {"streamable-http": "/mcp", "sse": "/sse"}
SSE_MESSAGE_PATH = "/messages/"

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


@dataclass
class _Generation:
    """One "boot" of the built-in server: a fresh MCP server whose sessions die with it."""

    app: Any
    stopped: anyio.Event = field(default_factory=anyio.Event)


class BuiltinBackend:
    """The built-in MCP server (official `mcp` SDK) on Streamable HTTP (stateful or stateless, SSE or JSON
    responses) or on the legacy 2024-11-05 HTTP+SSE transport (GET ``/sse`` + POST ``/messages/``).

    A restart builds a new server instance: every session id the old one issued answers 404 from then on.
    """

    def __init__(
        self,
        state: EmulatorState,
        *,
        transport: Transport = "streamable-http",
        path: str | None = None,
        stateless: bool = False,
        json_response: bool = False,
    ) -> None:
        self.state = state
        self.transport = transport
        self.path = path or DEFAULT_PATHS[transport]
        self.stateless = stateless
        self.json_response = json_response
        self._tasks: TaskGroup | None = None
        self._generation: _Generation | None = None
        self._restart_lock = anyio.Lock()

    def _build_app(self) -> Any:
        from mcp.server.transport_security import TransportSecuritySettings

        from sigv4_proxy.emulate.mcp_server import build_mcp_server

        server = build_mcp_server(self.state.executions, region=self.state.region, service=self.state.service)
        # The front already authenticates every request; Host/Origin checks would only refuse the
        # names (an /etc/hosts alias of an AWS host, say) users may reach the emulator by.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        if self.transport == "sse":
            return server.sse_app(
                sse_path=self.path,
                message_path=SSE_MESSAGE_PATH,
                transport_security=security,
                max_request_body_size=self.state.max_body_bytes,
            )
        return server.streamable_http_app(
            streamable_http_path=self.path,
            json_response=self.json_response,
            stateless_http=self.stateless,
            transport_security=security,
            max_request_body_size=self.state.max_body_bytes,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            await self._boot()
            task_status.started()
            await anyio.sleep_forever()

    async def _boot(self) -> None:
        assert self._tasks is not None
        generation = _Generation(self._build_app())
        await self._tasks.start(self._run_generation, generation)
        self._generation = generation

    @staticmethod
    async def _run_generation(
        generation: _Generation, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with generation.app.router.lifespan_context(generation.app):
            task_status.started()
            await generation.stopped.wait()

    async def restart(self) -> None:
        async with self._restart_lock:
            old = self._generation
            await self._boot()
            if old is not None:
                old.stopped.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        generation = self._generation
        if generation is None:
            raise RuntimeError("the built-in MCP server is not running")
        await generation.app(scope, receive, send)


class UpstreamBackend:
    """Forwards verified requests to another MCP server, streaming both bodies.

    The request path and query are kept and put on the upstream's origin (so a legacy SSE server's
    ``endpoint`` event, a relative URL, keeps working); hop-by-hop headers are dropped and ``Host`` becomes the
    upstream's. Response bytes are passed on as they arrive (``aiter_raw``: no decoding, no buffering).
    """

    def __init__(self, state: EmulatorState, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"upstream URL must be http(s)://host[:port]/path, got: {upstream_url}")
        self.state = state
        self.upstream_url = upstream_url
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path or "/"
        self._host = parts.netloc.encode("latin-1")
        self._client: Any = None

    @staticmethod
    def path_of(upstream_url: str) -> str:
        """The path the emulator serves for this upstream (the same as the upstream's)."""
        parts = urlsplit(upstream_url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        import httpx

        timeout = httpx.Timeout(30.0, read=None)  # SSE streams may be quiet for a long time
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False) as client:
            self._client = client
            task_status.started()
            await anyio.sleep_forever()

    async def restart(self) -> None:
        """Nothing to forget here (the upstream keeps its sessions); the front cuts in-flight requests."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        import httpx

        first = await receive()
        body: bytes = first.get("body", b"")
        url = self.origin + request_target(scope)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP | {b"host", b"content-length"}]
        headers.insert(0, (b"host", self._host))
        request = self._client.build_request(scope["method"], url, headers=headers, content=body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            await _send_error(send, 502, f"upstream MCP server {self.upstream_url} is unreachable: {exc!r}")
            return
        try:
            async with anyio.create_task_group() as tasks:
                # The client going away must end an upstream stream that would otherwise run forever.
                tasks.start_soon(_cancel_on_disconnect, receive, tasks)
                response_headers = [
                    (k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP | {b"content-length"}
                ]
                if "content-length" in response.headers and "content-encoding" not in response.headers:
                    response_headers.append((b"content-length", response.headers["content-length"].encode()))
                await send({"type": "http.response.start", "status": response.status_code, "headers": response_headers})
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tasks.cancel_scope.cancel()
        finally:
            await response.aclose()


async def _cancel_on_disconnect(receive: Receive, tasks: TaskGroup) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            tasks.cancel_scope.cancel()
            return


async def _send_error(send: Send, status: int, message: str) -> None:
    error = aws_error(status, None, message)
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": error.body, "more_body": False})

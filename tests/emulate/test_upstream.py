"""`--upstream`: verified requests are forwarded to another MCP server (an unauthenticated `mcp` SDK server),
without the signing headers, streaming both ways; SSE, legacy SSE and errors included."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from mcp import Client
from mcp.client.sse import sse_client
from mcp.server.transport_security import TransportSecuritySettings

from sigv4_proxy import SigV4Auth
from sigv4_proxy.emulate import start_mcp
from sigv4_proxy.emulate.mcp_server import build_mcp_server
from sigv4_proxy.emulate.server import bind_socket
from sigv4_proxy.emulate.state import ExecutionCounter

from .helpers import Httpx2SigV4Auth, initialize_body, mcp_client


@contextmanager
def plain_server(app: Any) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port (no authentication at all); yields its base URL."""
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    ready = threading.Event()
    while not server.started and thread.is_alive():
        ready.wait(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def upstream_app(transport: str = "streamable-http", seen_headers: list[dict[str, str]] | None = None) -> Any:
    server = build_mcp_server(ExecutionCounter(), region="us-east-1", service="execute-api")
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    if transport == "sse":
        app = server.sse_app(transport_security=security)
    else:
        app = server.streamable_http_app(transport_security=security)
    if seen_headers is None:
        return app

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen_headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await app(scope, receive, send)

    return recording


async def test_mcp_session_through_the_upstream() -> None:
    seen: list[dict[str, str]] = []
    with plain_server(upstream_app(seen_headers=seen)) as base:
        async with start_mcp(upstream=base + "/mcp") as emulator:
            assert emulator.url == f"{emulator.base_url}/mcp"
            async with mcp_client(emulator) as client:
                result = await client.call_tool("echo", {"message": "through"})
                assert result.content[0].text == "through"  # type: ignore[union-attr]
                progress: list[float] = []

                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    progress.append(value)

                await client.call_tool("progress", {"steps": 3, "delay_seconds": 0}, progress_callback=on_progress)
                assert progress == [1, 2, 3]
            assert all(record.ok for record in emulator.requests)
            assert emulator.executions.total() == 0  # only the built-in server counts executions
    assert seen, "the upstream saw no request"
    for headers in seen:
        assert not {"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"} & set(headers)
        assert headers["host"] == base.removeprefix("http://")


async def test_legacy_sse_upstream_keeps_the_relative_endpoint_working() -> None:
    with plain_server(upstream_app("sse")) as base:
        async with start_mcp(upstream=base + "/sse") as emulator:
            auth = Httpx2SigV4Auth(emulator.credentials, emulator.region, emulator.service)
            async with Client(sse_client(emulator.url, auth=auth), mode="legacy") as client:
                result = await client.call_tool("add", {"a": 1, "b": 2})
                assert result.structured_content == {"result": 3}
            paths = {(record.method, record.path) for record in emulator.requests}
            assert {("GET", "/sse"), ("POST", "/messages/")} <= paths


def test_refused_requests_never_reach_the_upstream() -> None:
    seen: list[dict[str, str]] = []
    with plain_server(upstream_app(seen_headers=seen)) as base, start_mcp(upstream=base + "/mcp") as emulator:
        response = httpx.post(emulator.url, content=initialize_body())
        assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert seen == []


def test_unreachable_upstream_is_a_502(closed_port: int) -> None:
    dead = f"http://127.0.0.1:{closed_port}/mcp"
    with start_mcp(upstream=dead) as emulator:
        auth = SigV4Auth(emulator.credentials, emulator.region, emulator.service)
        response = httpx.post(emulator.url, content=initialize_body(), auth=auth)
    assert response.status_code == 502
    assert response.json()["message"].startswith(f"upstream MCP server {dead} is unreachable: ")


def test_large_response_streams_through() -> None:
    with plain_server(upstream_app()) as base, start_mcp(upstream=base + "/mcp") as emulator:
        auth = SigV4Auth(emulator.credentials, emulator.region, emulator.service)
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        with httpx.Client(auth=auth, headers=headers, timeout=30) as client:
            init = client.post(emulator.url, content=initialize_body())
            session = {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
            client.post(emulator.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call"}
            call["params"] = {"name": "large", "arguments": {"size_bytes": 5_000_000}}  # type: ignore[assignment]
            chunks = 0
            received = b""
            with client.stream("POST", emulator.url, json=call, headers=session) as response:
                for chunk in response.iter_raw():
                    chunks += 1
                    received += chunk
    data = [line[5:] for line in received.splitlines() if line.startswith(b"data:")]
    result = json.loads(data[-1])["result"]
    assert len(result["content"][0]["text"]) == 5_000_000
    assert chunks > 1  # streamed, not handed over in one piece


@pytest.mark.parametrize("url", ["ftp://example.com/mcp", "http:///mcp"])
def test_bad_upstream_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="upstream URL must be"):
        start_mcp(upstream=url)

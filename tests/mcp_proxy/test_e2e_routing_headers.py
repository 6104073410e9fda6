"""The 2026-07-28 wire's routing headers, which exist only over HTTP: the proxy derives them from the message
(``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name``) and from the tool listings it has seen
(``Mcp-Param-*`` for ``x-mcp-header`` arguments). The SDK server rejects a mismatch with HEADER_MISMATCH."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import pytest
from pydantic import Field

from sigv4_proxy.emulate.server import start_mcp
from tests.support.waiting import wait_until_sync

from .harness import proxied_client

if TYPE_CHECKING:
    from sigv4_proxy.emulate import McpEmulator


@pytest.fixture(scope="module")
def annotated_server() -> Iterator[str]:
    """A plain SDK server (stateless, JSON) whose tool mirrors an argument into a header."""
    import uvicorn
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings

    server = MCPServer("annotated")

    @server.tool()
    def deploy(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], dry: bool = False) -> str:
        """Pretend to deploy."""
        return f"deploy to {region}" + (" (dry run)" if dry else "")

    app = server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(uvicorn_server.serve(sockets=[sock])), daemon=True)
    thread.start()
    wait_until_sync(lambda: uvicorn_server.started, what="the annotated MCP server to start")
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    uvicorn_server.should_exit = True
    thread.join(10)
    sock.close()


def calls(emulator: McpEmulator, since: int) -> list[tuple[str, int]]:
    return [(record.rpc, record.status) for record in emulator.requests[since:]]


async def test_param_headers_from_a_listing_the_proxy_has_seen(annotated_server: str) -> None:
    async with start_mcp(upstream=annotated_server) as emulator, proxied_client(emulator, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        since = len(emulator.requests)
        await client.list_tools()
        result = await client.call_tool("deploy", {"region": "eu-west-1", "dry": True})
        assert result.content[0].text == "deploy to eu-west-1 (dry run)"  # type: ignore[union-attr]
        assert calls(emulator, since) == [("tools/list", 200), ("tools/call deploy", 200)]


async def test_header_mismatch_is_forwarded_so_the_client_relists_and_the_retry_carries_the_header(
    annotated_server: str,
) -> None:
    async with start_mcp(upstream=annotated_server) as emulator, proxied_client(emulator, mode="auto") as client:
        since = len(emulator.requests)
        # No listing seen yet: the first call lacks Mcp-Param-Region, the server says HEADER_MISMATCH (a JSON-RPC
        # error in a 400), the SDK client relists through the proxy, and the resent call carries the header.
        result = await client.call_tool("deploy", {"region": "ap-south-1"})
        assert result.content[0].text == "deploy to ap-south-1"  # type: ignore[union-attr]
        assert calls(emulator, since) == [("tools/call deploy", 400), ("tools/list", 200), ("tools/call deploy", 200)]

"""Every kind of MCP message through the proxy: the official SDK client over stdio -> proxy (subprocess) ->
``emulate mcp`` (verifying every SigV4/SigV4a signature) -> the SDK's MCP server.

Matrix: stateful and stateless servers, JSON and SSE responses, v4 and v4a, the handshake era
(``initialize``) and the 2026 per-request era (``server/discover``).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

import mcp_types as types
import pytest

from tests.support.emulators import EmulatorVariant
from tests.support.waiting import wait_until

from .harness import Callbacks, proxied_client, text_of

if TYPE_CHECKING:
    from sigv4_proxy.emulate import McpEmulator

# ping and the logging capability are deprecated in 2026-07-28; the handshake era still uses them.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")

# start_mcp options of each mode (defaults left out, so a mode shares the emulator other tests start with them)
SERVER_MODES: dict[str, dict[str, Hashable]] = {
    "stateful-sse": {},
    "stateful-json": {"json_response": True},
    "stateless-sse": {"stateless": True},
    "stateless-json": {"stateless": True, "json_response": True},
}


@pytest.fixture
def emulators(emulator_variant: EmulatorVariant) -> dict[str, McpEmulator]:
    """An emulator per server mode (shared for the session, reset for the test)."""
    return {name: emulator_variant(**options) for name, options in SERVER_MODES.items()}


MATRIX = [
    pytest.param(server, sig, era, id=f"{server}-{sig}-{era}")
    for server in SERVER_MODES
    for sig in ("v4", "v4a")
    for era in ("handshake", "2026")
]


@pytest.mark.parametrize(("server", "sig", "era"), MATRIX)
async def test_every_message_type(emulators: dict[str, McpEmulator], server: str, sig: str, era: str) -> None:
    emulator = emulators[server]
    callbacks = Callbacks()
    stderr: list[str] = []
    seen_before = len(emulator.requests)
    mode = "legacy" if era == "handshake" else "auto"
    sse_responses = not emulator.config.json_response
    stateful = not emulator.config.stateless
    # Stateful servers get the standalone GET stream too: requests a tool sends outside its own request
    # (roots/list here) travel on it.
    extra = ["--sse"] if stateful else []
    async with proxied_client(
        emulator, "--sig-version", sig, *extra, mode=mode, stderr_sink=stderr, **callbacks.client_kwargs()
    ) as client:
        expected_version = "2026-07-28" if era == "2026" else "2025-11-25"
        assert client.protocol_version == expected_version
        assert client.server_info is None or client.server_info.name == "sigv4-proxy-emulator"

        if era == "handshake":
            await client.send_ping()  # removed in 2026-07-28
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "add", "progress", "elicit", "sample", "roots", "log", "large", "fail"} <= tools

        assert text_of(await client.call_tool("echo", {"message": 'héllo ✓ "quoted"\nline'})) == (
            'héllo ✓ "quoted"\nline'
        )
        assert text_of(await client.call_tool("add", {"a": 2, "b": 40.5})) == "42.5"

        result = await client.call_tool(
            "progress", {"steps": 3, "delay_seconds": 0.01}, progress_callback=callbacks.on_progress
        )
        assert text_of(result) == "done after 3 steps"
        if sse_responses:
            assert callbacks.progress == [(1, 3, "step 1 of 3"), (2, 3, "step 2 of 3"), (3, 3, "step 3 of 3")]

        failed = await client.call_tool("fail", {"message": "as designed"})
        assert failed.is_error and text_of(failed) == "Error executing tool fail: as designed"

        resources = await client.list_resources()
        assert [str(resource.uri) for resource in resources.resources] == ["emulator://info"]
        info = await client.read_resource("emulator://info")
        assert "us-east-1" in info.contents[0].text  # type: ignore[union-attr]
        templated = await client.read_resource("echo://templated-value")
        assert templated.contents[0].text == "templated-value"  # type: ignore[union-attr]
        prompts = await client.list_prompts()
        assert [prompt.name for prompt in prompts.prompts] == ["greet"]
        prompt = await client.get_prompt("greet", {"name": "Grace"})
        assert "Grace" in prompt.messages[0].content.text  # type: ignore[union-attr]

        if era == "handshake" and stateful and sse_responses:
            # server -> client requests ride the POST's event stream; the client's answers are POSTed back
            assert text_of(await client.call_tool("elicit", {})) == "Hello, Ada!"
            assert text_of(await client.call_tool("sample", {"prompt": "hi"})) == "model says: hi"
            assert "file:///work/project" in text_of(await client.call_tool("roots", {}))  # via the GET stream
            assert text_of(await client.call_tool("log", {"message": "note", "count": 2})) == "sent 2 log messages"
            assert callbacks.logs == ["note 1/2", "note 2/2"]

        missing = await client.call_tool("no-such-tool", {})
        assert missing.is_error and text_of(missing) == "Unknown tool: no-such-tool"

    log = stderr[0]
    assert "Proxy is ready to accept MCP protocol messages" in log
    assert "Traceback" not in log
    records = emulator.requests[seen_before:]
    assert {record.verdict for record in records} == {"ok"}, [record.line() for record in records if not record.ok]
    algorithms = {record.algorithm for record in records if record.algorithm}
    assert algorithms == {"AWS4-ECDSA-P256-SHA256" if sig == "v4a" else "AWS4-HMAC-SHA256"}


async def test_large_tool_result_and_argument(emulators: dict[str, McpEmulator]) -> None:
    size = 5 * 1024 * 1024
    async with proxied_client(emulators["stateful-sse"]) as client:
        result = await client.call_tool("large", {"size_bytes": size})
        assert len(text_of(result)) == size
        big = "€" * (size // 3)
        assert text_of(await client.call_tool("echo", {"message": big})) == big


async def test_standalone_stream_carries_server_notifications(emulators: dict[str, McpEmulator]) -> None:
    """With --sse, list_changed (sent outside any request) arrives on the GET stream."""
    callbacks = Callbacks()
    async with proxied_client(emulators["stateful-json"], "--sse", **callbacks.client_kwargs()) as client:
        await client.list_tools()
        assert text_of(await client.call_tool("touch_tools", {})) == "sent notifications/tools/list_changed"
        await wait_until(
            lambda: any(isinstance(n, types.ToolListChangedNotification) for n in callbacks.notifications),
            what="notifications/tools/list_changed on the standalone stream",
        )
    gets = [record for record in emulators["stateful-json"].requests if record.method == "GET"]
    assert gets and all(record.ok for record in gets)


async def test_standalone_stream_405_stops_quietly(emulators: dict[str, McpEmulator]) -> None:
    stderr: list[str] = []
    async with proxied_client(
        emulators["stateless-sse"], "--sse", "--log-level", "debug", stderr_sink=stderr
    ) as client:
        assert text_of(await client.call_tool("echo", {"message": "still fine"})) == "still fine"
    assert "WARNING" not in stderr[0]

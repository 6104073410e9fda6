"""The legacy HTTP+SSE transport (2024-11-05): an ``mcp`` SDK SSE server behind ``emulate mcp --transport sse``.

The full message set passes with ``--transport sse`` and with ``auto`` (which POSTs ``initialize`` first, gets
405 and falls back to GET + the ``endpoint`` event, as the MCP specification's backwards-compatibility
section describes). Every GET and POST is signed and verified.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import mcp_types as types
import pytest

from tests.mcp_proxy.harness import Callbacks, text_of
from tests.support.emulators import EmulatorVariant
from tests.support.waiting import wait_until

from .helpers import log_lines, resilient_client

if TYPE_CHECKING:
    from sigv4_proxy.emulate import McpEmulator

pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


@pytest.fixture
def legacy(emulator_variant: EmulatorVariant) -> McpEmulator:
    """The shared legacy HTTP+SSE emulator, reset for the test."""
    return emulator_variant(transport="sse")


@pytest.mark.parametrize("transport", ["sse", "auto"])
async def test_full_message_set(legacy: McpEmulator, transport: str) -> None:
    callbacks = Callbacks()
    stderr: list[str] = []
    async with resilient_client(
        legacy, "--transport", transport, stderr_sink=stderr, mode="legacy", **callbacks.client_kwargs()
    ) as client:
        await client.send_ping()
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "add", "progress", "elicit", "sample", "roots", "log", "touch_tools", "fail"} <= tools
        assert text_of(await client.call_tool("echo", {"message": 'héllo ✓ "quoted"\nline'})) == (
            'héllo ✓ "quoted"\nline'
        )
        assert text_of(await client.call_tool("add", {"a": 2, "b": 40.5})) == "42.5"
        result = await client.call_tool(
            "progress", {"steps": 3, "delay_seconds": 0.01}, progress_callback=callbacks.on_progress
        )
        assert text_of(result) == "done after 3 steps"
        assert callbacks.progress == [(1, 3, "step 1 of 3"), (2, 3, "step 2 of 3"), (3, 3, "step 3 of 3")]
        failed = await client.call_tool("fail", {"message": "as designed"})
        assert failed.is_error and text_of(failed) == "Error executing tool fail: as designed"

        assert [str(r.uri) for r in (await client.list_resources()).resources] == ["emulator://info"]
        assert "us-east-1" in (await client.read_resource("emulator://info")).contents[0].text  # type: ignore[union-attr]
        assert (await client.read_resource("echo://x")).contents[0].text == "x"  # type: ignore[union-attr]
        assert [p.name for p in (await client.list_prompts()).prompts] == ["greet"]
        assert "Grace" in (await client.get_prompt("greet", {"name": "Grace"})).messages[0].content.text  # type: ignore[union-attr]

        # server -> client requests and notifications arrive on the one event stream; answers are POSTed back
        assert text_of(await client.call_tool("elicit", {})) == "Hello, Ada!"
        assert text_of(await client.call_tool("sample", {"prompt": "hi"})) == "model says: hi"
        assert "file:///work/project" in text_of(await client.call_tool("roots", {}))
        assert text_of(await client.call_tool("log", {"message": "note", "count": 2})) == "sent 2 log messages"
        assert callbacks.logs == ["note 1/2", "note 2/2"]
        assert text_of(await client.call_tool("touch_tools", {})) == "sent notifications/tools/list_changed"
        await wait_until(
            lambda: any(isinstance(n, types.ToolListChangedNotification) for n in callbacks.notifications),
            what="notifications/tools/list_changed",
        )

        # overlapping calls, each answered under its own id
        answers = await asyncio.gather(*(client.call_tool("echo", {"message": f"n{i}"}) for i in range(16)))
        assert [text_of(answer) for answer in answers] == [f"n{i}" for i in range(16)]
        missing = await client.call_tool("no-such-tool", {})
        assert missing.is_error and text_of(missing) == "Unknown tool: no-such-tool"

    records = legacy.requests
    assert all(record.ok for record in records), [record.line() for record in records if not record.ok]
    first = [(record.method, record.path, record.status) for record in records[:2]]
    if transport == "auto":
        assert first[0] == ("POST", "/sse", 405)  # Streamable HTTP first ...
        assert "using the legacy HTTP+SSE transport (2024-11-05)" in stderr[0]  # ... then the fallback
    else:
        assert ("POST", "/sse", 405) not in [(r.method, r.path, r.status) for r in records]
    assert {record.path for record in records if record.method == "POST" and record.status == 202} == {"/messages/"}
    assert len(log_lines(stderr[0], "legacy SSE event stream open")) == 1
    assert "Traceback" not in stderr[0]
    assert legacy.executions.duplicates() == {}


# --- the endpoint event (pure) -----------------------------------------------------------------------------
STREAM = "https://mcp.example.com:8443/prod/sse"
FOREIGN = (
    "the server's endpoint event names another origin ({}). Diagnosis: signed requests are only sent to the target "
    "URL's origin; point --target-url at the server that receives the messages"
)


@pytest.mark.parametrize(
    ("data", "endpoint", "problem"),
    [
        (b"/prod/messages?session_id=abc", "https://mcp.example.com:8443/prod/messages?session_id=abc", None),
        (b"  messages/?sessionId=1\r\n", "https://mcp.example.com:8443/prod/messages/?sessionId=1", None),
        (b"https://MCP.example.com:8443/m", "https://MCP.example.com:8443/m", None),
        (b"https://evil.example/m?s=1", "https://evil.example/m?s=1", FOREIGN.format("https://evil.example")),
        (b"//evil.example:8443/m", "https://evil.example:8443/m", FOREIGN.format("https://evil.example:8443")),
        (
            b"http://mcp.example.com:8443/m",
            "http://mcp.example.com:8443/m",
            FOREIGN.format("http://mcp.example.com:8443"),
        ),
        (b"https://mcp.example.com/m", "https://mcp.example.com/m", FOREIGN.format("https://mcp.example.com")),
        (b"https://u:p@evil.example/m", "https://u:p@evil.example/m", FOREIGN.format("https://evil.example")),
    ],
)
def test_the_endpoint_event_is_resolved_and_confined_to_the_streams_origin(
    data: bytes, endpoint: str, problem: str | None
) -> None:
    from sigv4_proxy.mcp.legacy import endpoint_url, foreign_endpoint_problem

    assert endpoint_url(STREAM, bytearray(data)) == endpoint
    assert foreign_endpoint_problem(STREAM, endpoint) == problem

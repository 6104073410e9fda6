"""The server is restarted mid-session (``forget_sessions``: every session id answers 404 from then on, every
open stream is cut): the next call succeeds without the client re-initialising. The proxy re-runs the
client's own ``initialize`` and ``notifications/initialized``, takes the new session id, resends the call
once, and reopens the standalone stream."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import mcp_types as types
import pytest

from sigv4_proxy.emulate.faults import Match
from tests.mcp_proxy.harness import Callbacks, text_of
from tests.support.emulators import EmulatorVariant
from tests.support.waiting import wait_until

from .helpers import log_lines, resilient_client

if TYPE_CHECKING:
    from sigv4_proxy.emulate import McpEmulator

pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


@pytest.mark.parametrize(
    ("transport", "args"),
    [("streamable-http", ["--sse"]), ("sse", ["--transport", "sse"])],
    ids=["streamable-http", "legacy-sse"],
)
async def test_server_restart_mid_session(emulator_variant: EmulatorVariant, transport: str, args: list[str]) -> None:
    callbacks = Callbacks()
    stderr: list[str] = []
    emulator = emulator_variant(transport=transport)
    async with resilient_client(emulator, *args, stderr_sink=stderr, **callbacks.client_kwargs()) as client:
        assert text_of(await client.call_tool("echo", {"message": "before"})) == "before"
        streams_before = len([r for r in emulator.requests if r.method == "GET"])
        await asyncio.to_thread(emulator.forget_sessions)

        assert text_of(await client.call_tool("echo", {"message": "after"})) == "after"
        assert text_of(await client.call_tool("add", {"a": 1, "b": 2})) == "3.0"

        # the server's own messages flow again: on the reopened standalone stream (or the new legacy stream)
        await wait_until(
            lambda: len([r for r in emulator.requests if r.method == "GET" and r.status == 200]) > streams_before,
            what="the event stream to be reopened",
        )
        assert text_of(await client.call_tool("touch_tools", {})) == "sent notifications/tools/list_changed"
        await wait_until(
            lambda: any(isinstance(n, types.ToolListChangedNotification) for n in callbacks.notifications),
            what="notifications/tools/list_changed after the restart",
        )
        rpc = [record.rpc for record in emulator.requests if record.method == "POST"]
    assert rpc.count("initialize") == 2  # the client's, and the proxy's re-run of it
    assert rpc.count("notifications/initialized") == 2
    assert emulator.executions.duplicates() == {}
    log = stderr[0]
    assert len(log_lines(log, r"WARNING the server no longer knows MCP session \S+ \(.*\): re-initializing")) == 1
    assert log_lines(log, r"INFO  MCP session re-established \(session \S+, protocol 2025-11-25\)")
    assert "Traceback" not in log


async def test_standalone_stream_reconnects_after_a_refusal(emulator: McpEmulator) -> None:
    """A 503 on the GET is transient: the stream is reopened after the reconnection delay."""
    callbacks = Callbacks()
    stderr: list[str] = []
    emulator.fail_next(503, match=Match(http_method="GET"))
    seen = len(emulator.requests)
    async with resilient_client(emulator, "--sse", stderr_sink=stderr, **callbacks.client_kwargs()) as client:
        await wait_until(
            lambda: [r.status for r in emulator.requests[seen:] if r.method == "GET"][:2] == [503, 200],
            what="the GET to be refused, then reopened",
        )
        await client.call_tool("touch_tools", {})
        await wait_until(
            lambda: any(isinstance(n, types.ToolListChangedNotification) for n in callbacks.notifications),
            what="notifications/tools/list_changed on the reopened stream",
        )
    assert log_lines(stderr[0], r"INFO  standalone event stream refused: HTTP 503; reconnecting in 1\.0 s$")


async def test_standalone_stream_reconnects_after_a_reset(emulator: McpEmulator) -> None:
    """The GET stream is cut right after it delivered an event: it is reopened, and the next event arrives."""
    callbacks = Callbacks()
    stderr: list[str] = []
    emulator.drop_next(after_events=1, match=Match(http_method="GET"))
    seen = len(emulator.requests)

    def list_changed() -> int:
        return sum(isinstance(n, types.ToolListChangedNotification) for n in callbacks.notifications)

    def streams() -> int:
        return len([r for r in emulator.requests[seen:] if r.method == "GET"])

    async with resilient_client(emulator, "--sse", stderr_sink=stderr, **callbacks.client_kwargs()) as client:
        await wait_until(lambda: streams() == 1, what="the GET stream")
        await client.call_tool("touch_tools", {})
        await wait_until(lambda: list_changed() == 1, what="the event before the reset")
        await wait_until(lambda: streams() == 2, what="the GET stream to reopen")
        await client.call_tool("touch_tools", {})
        await wait_until(lambda: list_changed() == 2, what="the event on the reopened stream")
    assert log_lines(stderr[0], r"INFO  standalone event stream broke off: .*; reconnecting in 1\.0 s$")

"""The built-in MCP server behind the verifying front, driven by the official `mcp` SDK client whose every
request is signed by the product's SigV4Auth: every message kind, in every transport mode."""

from __future__ import annotations

from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client, MCPError
from mcp.client.sse import sse_client

from sigv4_proxy.emulate import McpEmulator
from tests.support.emulators import EmulatorVariant

from .helpers import Httpx2SigV4Auth, mcp_client


async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="sampled"), model="test-model"
    )


async def list_roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///work")])


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    inner = getattr(error, "exceptions", None)
    if inner is None:
        return [error]
    return [leaf for child in inner for leaf in leaves(child)]


def text_of(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


MODES = [
    pytest.param({}, id="stateful-sse"),
    pytest.param({"json_response": True}, id="stateful-json"),
    pytest.param({"stateless": True}, id="stateless-sse"),
    pytest.param({"stateless": True, "json_response": True}, id="stateless-json"),
]


@pytest.mark.parametrize("emulator_options", MODES)
async def test_tools_resources_prompts_in_every_mode(emulator: McpEmulator, emulator_options: dict[str, bool]) -> None:
    async with mcp_client(emulator) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "add", "progress", "elicit", "sample", "roots", "log", "large", "fail", "sleep"} <= tools
        assert text_of(await client.call_tool("echo", {"message": "héllo"})) == "héllo"
        assert (await client.call_tool("add", {"a": 2, "b": 3.5})).structured_content == {"result": 5.5}
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, total, message))

        result = await client.call_tool("progress", {"steps": 3, "delay_seconds": 0}, progress_callback=on_progress)
        assert text_of(result) == "done after 3 steps"
        if not emulator_options.get("json_response"):
            # JSON responses cannot carry notifications before the result; SSE responses must
            assert progress == [(1, 3, "step 1 of 3"), (2, 3, "step 2 of 3"), (3, 3, "step 3 of 3")]
        failed = await client.call_tool("fail", {"message": "on purpose"})
        assert failed.is_error and "on purpose" in failed.content[0].text  # type: ignore[union-attr]
        large = text_of(await client.call_tool("large", {"size_bytes": 300_000}))
        assert len(large) == 300_000 and large.startswith("0123456789abcdef")
        info = await client.read_resource("emulator://info")
        assert "us-east-1" in info.contents[0].text  # type: ignore[union-attr]
        templated = await client.read_resource("echo://abc")
        assert templated.contents[0].text == "abc"  # type: ignore[union-attr]
        prompt = await client.get_prompt("greet", {"name": "Bob"})
        assert prompt.messages[0].content.text == "Please greet Bob warmly."  # type: ignore[union-attr]
    assert all(record.ok for record in emulator.requests)
    assert emulator.executions.duplicates() == {}
    assert emulator.executions.by_tool() == {"echo": 1, "add": 1, "progress": 1, "fail": 1, "large": 1}


async def test_server_to_client_requests_and_notifications(emulator: McpEmulator) -> None:
    logs: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async with mcp_client(
        emulator,
        elicitation_callback=elicitation,
        sampling_callback=sampling,
        list_roots_callback=list_roots,
        logging_callback=on_log,
    ) as client:
        assert text_of(await client.call_tool("elicit", {})) == "Hello, Ada!"
        assert text_of(await client.call_tool("sample", {"prompt": "hi"})) == "sampled"
        assert text_of(await client.call_tool("roots", {})) == "file:///work"
        assert text_of(await client.call_tool("log", {"message": "m", "count": 2})) == "sent 2 log messages"
        assert [entry.data for entry in logs] == ["m 1/2", "m 2/2"]
        assert text_of(await client.call_tool("touch_tools", {})) == "sent notifications/tools/list_changed"
    # each server-to-client answer was a POST of its own, signed and verified
    rpc = [record.rpc for record in emulator.requests]
    assert rpc.count("") >= 3  # JSON-RPC responses carry no method
    assert all(record.ok for record in emulator.requests)


async def test_modern_protocol_version_passes_the_front(emulator: McpEmulator) -> None:
    async with mcp_client(emulator, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        assert text_of(await client.call_tool("echo", {"message": "new era"})) == "new era"
    assert emulator.requests[0].rpc == "server/discover"


async def test_execution_counter_counts_per_request_id(emulator: McpEmulator) -> None:
    async with mcp_client(emulator) as client:
        for n in range(3):
            await client.call_tool("echo", {"message": str(n)})
    counts = emulator.executions.by_id()
    assert sorted(counts.values()) == [1, 1, 1]
    assert emulator.executions.total() == 3
    emulator.executions.clear()
    assert emulator.executions.total() == 0


async def test_unsigned_client_is_refused_by_the_front(emulator: McpEmulator) -> None:
    with pytest.raises(Exception) as raised:  # the SDK wraps the MCPError in exception groups
        async with Client(emulator.url, mode="legacy") as client:
            await client.list_tools()
    assert any(isinstance(error, MCPError) for error in leaves(raised.value))
    assert emulator.requests[0].verdict == "MissingAuthenticationTokenException"
    assert emulator.executions.total() == 0


async def test_legacy_sse_transport_end_to_end(emulator_variant: EmulatorVariant) -> None:
    emulator = emulator_variant(transport="sse")
    assert emulator.url.endswith("/sse")
    auth = Httpx2SigV4Auth(emulator.credentials, emulator.region, emulator.service)
    async with Client(sse_client(emulator.url, auth=auth), mode="legacy") as client:
        assert text_of(await client.call_tool("echo", {"message": "old school"})) == "old school"
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        await client.call_tool("progress", {"steps": 2, "delay_seconds": 0}, progress_callback=on_progress)
        assert progress == [1, 2]
    methods = [(record.method, record.path) for record in emulator.requests]
    assert methods[0] == ("GET", "/sse")
    assert ("POST", "/messages/") in methods
    assert all(record.ok for record in emulator.requests)


async def test_legacy_sse_carries_server_to_client_requests(emulator_variant: EmulatorVariant) -> None:
    logs: list[object] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    emulator = emulator_variant(transport="sse")
    auth = Httpx2SigV4Auth(emulator.credentials, emulator.region, emulator.service)
    async with Client(
        sse_client(emulator.url, auth=auth),
        mode="legacy",
        elicitation_callback=elicitation,
        sampling_callback=sampling,
        list_roots_callback=list_roots,
        logging_callback=on_log,
    ) as client:
        assert text_of(await client.call_tool("elicit", {})) == "Hello, Ada!"
        assert text_of(await client.call_tool("sample", {})) == "sampled"
        assert text_of(await client.call_tool("roots", {})) == "file:///work"
        await client.call_tool("log", {"message": "x", "count": 1})
        assert logs == ["x 1/1"]
    assert all(record.ok for record in emulator.requests)


async def test_legacy_sse_stream_and_posts_are_verified(emulator_variant: EmulatorVariant) -> None:
    emulator = emulator_variant(transport="sse")
    async with httpx2.AsyncClient() as http:
        refused = await http.get(emulator.url)
        assert refused.status_code == 403
        assert refused.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
        posted = await http.post(emulator.base_url + "/messages/?session_id=00", content=b"{}")
        assert posted.status_code == 403
    # the POST endpoint of an SSE server refuses POSTs to the stream path (what `auto` clients probe)
    auth = Httpx2SigV4Auth(emulator.credentials, emulator.region, emulator.service)
    async with httpx2.AsyncClient(auth=auth) as http:
        probe = await http.post(emulator.url, content=b"{}", headers={"content-type": "application/json"})
        assert probe.status_code == 405

"""stdin hygiene and concurrency, driven line by line: whatever arrives on stdin, the client gets the right
JSON-RPC answer (or nothing, for notifications), stdout carries nothing but protocol messages, and the
proxy keeps serving."""

from __future__ import annotations

import asyncio
import json
import os
import random
from typing import Any

import mcp_types as types
import pytest

from sigv4_proxy.emulate import McpEmulator
from tests.support.waiting import wait_until

from .harness import call, proxied_client, raw_proxy

pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


async def assert_still_serving(proxy: Any, tag: str = "alive") -> None:
    response = await proxy.request(call(f"check-{tag}", "echo", {"message": tag}))
    assert response["result"]["content"][0]["text"] == tag


async def test_invalid_json_non_jsonrpc_and_blank_lines(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        await proxy.send(b"{not json")
        assert await proxy.receive() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": -32700,
                "message": "Parse error: the message is not valid JSON (Expecting property name enclosed in double "
                "quotes: line 1 column 2 (char 1))",
            },
        }
        await proxy.send(b'{"hello": "world", "id": 12}')
        error = await proxy.receive()
        assert (error["id"], error["error"]["code"]) == (12, -32600)
        await proxy.send(b"[1, 2, 3]")
        assert (await proxy.receive())["error"]["code"] == -32600
        await proxy.send(b"   \n\r\n")  # blank lines are skipped silently
        await proxy.send(json.dumps(call("crlf", "echo", {"message": "crlf"})).encode() + b"\r\n")
        assert (await proxy.receive())["result"]["content"][0]["text"] == "crlf"
        await assert_still_serving(proxy)
        assert await proxy.close() == 0
    assert "rejected a 9-byte stdin line: Parse error" in proxy.stderr


async def test_binary_garbage_then_service_continues(emulator: McpEmulator) -> None:
    rng = random.Random(7)
    garbage = bytes(rng.randrange(256) for _ in range(64 * 1024))
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        await proxy.send_raw(garbage + b"\n")
        errors = []
        lines = sum(1 for segment in garbage.split(b"\n") if segment.strip())  # blank lines are skipped
        for _ in range(lines):
            line = await proxy.receive_line()
            errors.append(json.loads(line))  # whatever came in, stdout carries JSON-RPC only
        assert all(error["id"] is None and error["error"]["code"] in (-32700, -32600) for error in errors), errors
        await assert_still_serving(proxy)
        assert await proxy.close() == 0


async def test_20_mb_line_passes_through_and_back(emulator: McpEmulator) -> None:
    payload = "z" * (20 * 1024 * 1024)
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        response = await proxy.request(call("big", "echo", {"message": payload}), timeout=60)
        assert response["result"]["content"][0]["text"] == payload
        await assert_still_serving(proxy)
        assert await proxy.close() == 0


async def test_over_size_line_gets_an_error_under_its_id_and_nothing_is_lost(emulator: McpEmulator) -> None:
    payload = "q" * (20 * 1024 * 1024)
    async with raw_proxy(emulator, "--max-message-bytes", "1MiB") as proxy:
        await proxy.initialize()
        before = len(emulator.requests)
        too_big = call("too-big", "echo", {"message": payload})
        await proxy.send(too_big)
        await proxy.send(call("next", "echo", {"message": "after"}))
        assert await proxy.receive() == {
            "jsonrpc": "2.0",
            "id": "too-big",
            "error": {
                "code": -32600,
                "message": f"Invalid Request: message of {len(json.dumps(too_big))} bytes exceeds the limit of "
                "1048576 bytes (--max-message-bytes); it was not forwarded",
            },
        }
        assert (await proxy.receive())["result"]["content"][0]["text"] == "after"
        # an over-size notification is only logged; binary without line breaks past the limit -> id null
        await proxy.send({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"pad": payload}})
        await proxy.send_raw(os.urandom(3 * 1024 * 1024).replace(b"\n", b"x") + b"\n")
        oversize = await proxy.receive()
        assert oversize["id"] is None and oversize["error"]["code"] == -32600
        await assert_still_serving(proxy)
        assert await proxy.close() == 0
    assert all("echo" not in record.rpc or record.status == 200 for record in emulator.requests[before:])
    assert proxy.stderr.count("exceeds the limit of 1048576 bytes") == 3


async def test_duplicate_id_in_flight_is_rejected_and_the_first_still_answered(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        await proxy.send(call(5, "sleep", {"seconds": 0.5}))
        await proxy.send(call(5, "echo", {"message": "dup"}))
        first = await proxy.receive()
        assert (
            first["id"] == 5 and first["error"]["code"] == -32600 and "already in flight" in first["error"]["message"]
        )
        second = await proxy.receive()
        assert second["id"] == 5 and second["result"]["content"][0]["text"] == "slept 0.5s"
        assert await proxy.close() == 0


async def test_ids_of_different_types_and_batches_are_routed_apart(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        await proxy.send(call(1, "echo", {"message": "number"}))
        await proxy.send(call("1", "echo", {"message": "string"}))
        got = {json.dumps((await proxy.receive())["id"]): None for _ in range(2)}
        assert set(got) == {"1", '"1"'}
        await proxy.send(b"{}")  # not JSON-RPC
        assert (await proxy.receive())["error"]["code"] == -32600
        await assert_still_serving(proxy)
        assert await proxy.close() == 0


async def test_64_overlapping_calls_each_answered_under_its_own_id(emulator: McpEmulator) -> None:
    """All 64 calls are executing on the server before the first answer arrives: nothing is serialised."""
    async with proxied_client(emulator) as client:
        first_answer_seen_with: list[int] = []

        async def one(index: int) -> str:
            if index % 2:
                result = await client.call_tool("sleep", {"seconds": 1.5})
            else:
                await asyncio.sleep(0)
                result = await client.call_tool("progress", {"steps": 3, "delay_seconds": 0.5})
            if not first_answer_seen_with:
                first_answer_seen_with.append(emulator.executions.total())
            block = result.content[0]
            assert isinstance(block, types.TextContent)
            return block.text

        results = await asyncio.gather(*(one(index) for index in range(64)))
        assert results == ["done after 3 steps" if index % 2 == 0 else "slept 1.5s" for index in range(64)]
        assert first_answer_seen_with == [64]
        # a ping is not held up by 64 calls in flight
        pending = [asyncio.create_task(client.call_tool("sleep", {"seconds": 2})) for _ in range(8)]
        await client.send_ping()
        assert not any(task.done() for task in pending)
        await asyncio.gather(*pending)
        assert emulator.executions.duplicates() == {}
        assert emulator.executions.total() == 64 + 8


@pytest.mark.parametrize("count", [200])
async def test_many_sequential_and_parallel_echoes_keep_their_ids(emulator: McpEmulator, count: int) -> None:
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        for index in range(count):
            await proxy.send(call(f"e{index}", "echo", {"message": f"m{index}"}))
        answers = {}
        for _ in range(count):
            response = await proxy.receive()
            answers[response["id"]] = response["result"]["content"][0]["text"]
        assert answers == {f"e{index}": f"m{index}" for index in range(count)}
        assert await proxy.close() == 0


MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


async def test_cancellation_is_forwarded_on_the_handshake_wire_and_nothing_answers_the_cancelled_call(
    emulator: McpEmulator,
) -> None:
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        since = len(emulator.requests)
        await proxy.send(call(7, "sleep", {"seconds": 2}))
        await wait_until(lambda: emulator.executions.count(7) == 1, what="the server to start the call")
        await proxy.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}})
        # the next line on stdout answers the next request: no error was made up for the cancelled one
        assert (await proxy.request(call(8, "echo", {"message": "next"})))["id"] == 8
        assert await proxy.close() == 0
    assert "notifications/cancelled" in [record.rpc for record in emulator.requests[since:]]
    assert "tools/call id=7 failed" not in proxy.stderr


async def test_cancellation_on_the_2026_wire_closes_the_request_stream(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator) as proxy:
        request = call(1, "sleep", {"seconds": 30}, _meta=MODERN_META)
        await proxy.send(request)
        await wait_until(lambda: emulator.executions.count(1) == 1, what="the server to start the call")
        await proxy.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}})
        echo = call(2, "echo", {"message": "after"}, _meta=MODERN_META)
        assert (await proxy.request(echo))["result"]["content"][0]["text"] == "after"
        assert await proxy.close() == 0  # exits at once: the cancelled call no longer holds shutdown
        assert "notifications/cancelled" not in [record.rpc for record in emulator.requests]
    assert "shutting down (stdin closed): 0 message(s) in flight" in proxy.stderr


async def test_a_batch_is_forwarded_as_is_and_each_request_in_it_is_answered(emulator: McpEmulator) -> None:
    """The SDK server refuses batches (removed in 2025-06-18) with a 400: each request still gets its answer."""
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize("2025-03-26")
        notification = {"jsonrpc": "2.0", "method": "notifications/x"}
        await proxy.send(
            json.dumps([call(2, "echo", {"message": "a"}), notification, call(3, "echo", {"message": "b"})])
        )
        answers = [await proxy.receive(), await proxy.receive()]
        assert sorted(answer["id"] for answer in answers) == [2, 3]
        assert all(answer["error"]["message"].startswith("HTTP 400") for answer in answers)
        await assert_still_serving(proxy)
        assert await proxy.close() == 0

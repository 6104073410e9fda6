"""Upstream faults: each call gets exactly one response, and nothing is executed twice.

Every fault is real: ``emulate mcp`` resets connections, answers 5xx / 429 / 424 / an empty 200 instead of
the MCP server, or serves a tool that is slower than ``--timeout``. Its execution counter (tool executions
per JSON-RPC id, counted inside the MCP server) proves that a retry never ran a tool twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sigv4_proxy.emulate.faults import Match

from .helpers import assert_nothing_else, call, error_of, exchange, log_lines, resilient_proxy

if TYPE_CHECKING:
    from sigv4_proxy.emulate import McpEmulator

ECHO = Match(tool="echo")


def text_of(response: dict[str, Any]) -> str:
    return response["result"]["content"][0]["text"]


async def test_connection_reset_mid_sse_response(emulator: McpEmulator) -> None:
    async with resilient_proxy(emulator) as proxy:
        await proxy.initialize()
        emulator.drop_next(after_events=1, match=Match(tool="progress"))
        await proxy.send(call("cut", "progress", {"steps": 3, "delay_seconds": 0.05}, _meta={"progressToken": "p"}))
        progress = await proxy.receive()
        assert progress["method"] == "notifications/progress" and progress["params"]["progress"] == 1
        error = error_of(await proxy.receive())
        port = emulator.port
        assert error["message"] == (
            f"127.0.0.1:{port} closed the connection before the response was complete. Diagnosis: the server or a "
            "load balancer dropped the connection (crash, restart, idle or duration limit); the request may have "
            "been executed, so it was not resent"
        )
        assert error["data"] == {"kind": "connection_closed", "retryable": False}
        assert emulator.executions.count("cut") == 1

        # A read-only request whose connection was reset is resent: running it twice is harmless.
        emulator.drop_next(forward=False, match=Match(rpc_method="tools/list"))
        listed = await exchange(proxy, {"jsonrpc": "2.0", "id": "list", "method": "tools/list"})
        assert any(tool["name"] == "echo" for tool in listed["result"]["tools"])
        await assert_nothing_else(proxy)
        assert await proxy.close() == 0
    assert log_lines(
        proxy.stderr, r"tools/list id=\"list\": .*closed the connection.* retry 1 of 2 in 0\.00 s \(backoff\)"
    )
    assert emulator.executions.duplicates() == {}


async def test_5xx(emulator: McpEmulator) -> None:
    async with resilient_proxy(emulator) as proxy:
        await proxy.initialize()
        emulator.fail_next(502, match=ECHO)  # the gateway answered instead of the server: retried
        assert text_of(await exchange(proxy, call("bad-gateway", "echo", {"message": "once"}))) == "once"
        assert emulator.executions.count("bad-gateway") == 1

        emulator.fail_next(503, times=3, match=ECHO)
        error = error_of(await exchange(proxy, call("unavailable", "echo", {"message": "x"})))
        assert error["message"] == (
            "HTTP 503. Diagnosis: the gateway could not get a valid answer from the backend (502/503; restarting, "
            "overloaded, or a malformed backend response): tried 3 times with backoff; if it persists, check the "
            "backend's logs"
        )
        assert error["data"] == {"kind": "unavailable", "retryable": True, "status": 503, "attempts": 3}
        assert emulator.executions.count("unavailable") == 0

        emulator.fail_next(500, match=ECHO)  # the server itself failed: it may have run the tool
        error = error_of(await exchange(proxy, call("internal", "echo", {"message": "x"})))
        assert error["message"] == (
            "HTTP 500. Diagnosis: the server failed while handling the request: it may have been executed, so it "
            "was not resent; check the server's logs"
        )

        emulator.fail_next(504, match=ECHO)  # the backend may still be running it: a tools/call is not resent
        error = error_of(await exchange(proxy, call("gateway-timeout", "echo", {"message": "x"})))
        assert error["message"].startswith("HTTP 504. Diagnosis: the gateway gave up waiting for the backend")
        assert error["message"].endswith("(not resent: the server may have started executing the request)")
        emulator.fail_next(504, match=Match(rpc_method="tools/list"))  # ... but a read-only request is
        assert "tools" in (await exchange(proxy, {"jsonrpc": "2.0", "id": "l", "method": "tools/list"}))["result"]

        await assert_nothing_else(proxy)
        assert await proxy.close() == 0
    assert len(emulator.requests) > 0 and emulator.executions.duplicates() == {}
    assert log_lines(proxy.stderr, r"tools/call id=\"bad-gateway\": HTTP 502\. .* retry 1 of 2 in 0\.00 s \(backoff\)")


async def test_429_with_retry_after(emulator: McpEmulator) -> None:
    async with resilient_proxy(emulator) as proxy:
        await proxy.initialize()
        emulator.throttle_next(retry_after=1, match=ECHO)
        assert text_of(await exchange(proxy, call("throttled", "echo", {"message": "patience"}))) == "patience"
        assert emulator.executions.count("throttled") == 1

        emulator.throttle_next(retry_after=300, match=ECHO)  # longer than anyone should wait: said at once
        error = error_of(await exchange(proxy, call("later", "echo", {"message": "x"})))
        assert error["message"] == (
            "HTTP 429 TooManyRequestsException: Too Many Requests. Diagnosis: the server is throttling requests: "
            "not retried; if it persists, lower the request rate or ask for a higher quota (the server asked to "
            "retry after 5 min, longer than the 2 min this proxy waits)"
        )
        await assert_nothing_else(proxy)
        assert await proxy.close() == 0
    assert log_lines(
        proxy.stderr,
        r"WARNING tools/call id=\"throttled\": HTTP 429 TooManyRequestsException: Too Many Requests\..* — "
        r"HTTP 429: retry 1 of 2 in 1\.00 s \(as Retry-After asks\)$",
    )


async def test_424_twice_then_200(emulator: McpEmulator) -> None:
    async with resilient_proxy(emulator) as proxy:
        await proxy.initialize()
        emulator.fail_next(424, times=2, match=ECHO)  # AgentCore while the runtime cold-starts
        assert text_of(await exchange(proxy, call("cold", "echo", {"message": "warm now"}))) == "warm now"
        await assert_nothing_else(proxy)
        assert await proxy.close() == 0
    assert emulator.executions.count("cold") == 1
    # the longer cold-start backoff: 1-2 s, then 2-4 s (fixed jitter 0: the lower bounds)
    waits = log_lines(proxy.stderr, r"HTTP 424: retry \d of 2 in .* s \(backoff\)$")
    assert [line.rsplit("— ", 1)[1] for line in waits] == [
        "HTTP 424: retry 1 of 2 in 1.00 s (backoff)",
        "HTTP 424: retry 2 of 2 in 2.00 s (backoff)",
    ]


async def test_slow_server_against_timeout(emulator: McpEmulator) -> None:
    async with resilient_proxy(emulator, "--timeout", "1s") as proxy:
        await proxy.initialize()
        error = error_of(await exchange(proxy, call("slow", "sleep", {"seconds": 3})))
        assert error["message"] == (
            f"no response from 127.0.0.1:{emulator.port} within the time limit. Diagnosis: the server accepted the "
            "request but did not answer in time; it may still be executing it, so it was not resent; raise "
            "--timeout for slow operations"
        )
        assert error["data"] == {"kind": "read_timeout", "retryable": False}
        await assert_nothing_else(proxy)
        assert await proxy.close() == 0
    assert emulator.executions.count("slow") == 1


async def test_empty_200(emulator: McpEmulator) -> None:
    async with resilient_proxy(emulator) as proxy:
        await proxy.initialize()
        before = len(emulator.requests)
        emulator.fail_next(200, match=ECHO)
        error = error_of(await exchange(proxy, call("empty", "echo", {"message": "x"})))
        assert error["message"] == (
            "HTTP 200 with an empty body instead of a JSON-RPC response. Diagnosis: the server or a gateway in front "
            "of it lost the response (a function that returned nothing, an integration timeout); check the "
            "server's logs"
        )
        assert error["data"] == {"kind": "unexpected_response", "status": 200}
        calls = [record for record in emulator.requests[before:] if record.rpc.startswith("tools/call")]
        assert len(calls) == 1  # not resent
        await assert_nothing_else(proxy)
        assert await proxy.close() == 0
    assert emulator.executions.count("empty") == 0

"""Exactly one answer per request when the upstream fails, and an answer that says the cause and the fix.

Each failure is produced for real: a wrong signing configuration judged by ``emulate mcp``'s verifier,
the emulator's fault injection (statuses, empty bodies, dropped connections), a closed port, a slow tool.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sigv4_proxy.emulate.faults import Match

from .harness import call, initialize_message, raw_proxy

if TYPE_CHECKING:
    from sigv4_proxy.emulate import McpEmulator

UPSTREAM_ERROR = -32000


def error_of(response: dict[str, Any]) -> dict[str, Any]:
    assert "error" in response, response
    return response["error"]


async def test_wrong_service_name(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator, "--service-name", "lambda") as proxy:
        error = error_of(await proxy.request(initialize_message(1)))
        assert error == {
            "code": UPSTREAM_ERROR,
            "message": "HTTP 403 InvalidSignatureException: Credential should be scoped to correct service: "
            "'execute-api'. Diagnosis: signed for service 'lambda' but the server expects 'execute-api': use "
            "--service-name execute-api",
            "data": {
                "kind": "wrong_service",
                "retryable": False,
                "status": 403,
                "errorType": "InvalidSignatureException",
            },
        }
        assert await proxy.close() == 0
    assert "initialize id=1 failed: HTTP 403 InvalidSignatureException" in proxy.stderr


async def test_wrong_region_and_wrong_secret(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator, "--region", "eu-west-1") as proxy:
        error = error_of(await proxy.request(initialize_message("r")))
        assert error["message"].startswith(
            "HTTP 403 InvalidSignatureException: Credential should be scoped to a valid region, not 'eu-west-1'."
        )
        assert error["data"]["kind"] == "wrong_region"
        await proxy.close()
    async with raw_proxy(emulator, env={"AWS_SECRET_ACCESS_KEY": "not-the-secret-" * 3}) as proxy:
        error = error_of(await proxy.request(initialize_message("s")))
        assert error["message"].startswith(
            "HTTP 403 InvalidSignatureException: The request signature we calculated does not match the signature "
            "you provided."
        )
        assert error["data"]["kind"] == "signature_mismatch"
        assert "Diagnosis:" in error["message"]
        await proxy.close()


async def test_connection_refused(emulator: McpEmulator, closed_port: int) -> None:
    async with raw_proxy(emulator, "--target-url", f"http://127.0.0.1:{closed_port}/mcp") as proxy:
        error = error_of(await proxy.request(initialize_message(1)))
        assert error["message"].startswith(f"connection to 127.0.0.1:{closed_port} refused. Diagnosis: ")
        assert error["message"].endswith("(gave up after 3 attempts)")  # --retries defaults to 2
        assert error["data"] == {"kind": "connection_refused", "retryable": True, "attempts": 3}
        assert await proxy.close() == 0


async def test_status_failures_empty_200_and_202(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator, "--retries", "0") as proxy:  # (retries: tests/mcp_resilience)
        await proxy.initialize()
        emulator.fail_next(502, match=Match(tool="echo"))
        error = error_of(await proxy.request(call(2, "echo", {"message": "x"})))
        assert error["message"].startswith("HTTP 502. Diagnosis: ") and error["data"]["status"] == 502

        emulator.fail_next(200, match=Match(tool="echo"))
        assert error_of(await proxy.request(call(3, "echo", {"message": "x"})))["message"] == (
            "HTTP 200 with an empty body instead of a JSON-RPC response. Diagnosis: the server or a gateway in front "
            "of it lost the response (a function that returned nothing, an integration timeout); check the server's "
            "logs"
        )
        emulator.fail_next(202, match=Match(tool="echo"))
        assert error_of(await proxy.request(call(4, "echo", {"message": "x"})))["message"].startswith(
            "HTTP 202 Accepted for a request, so no response will follow."
        )
        emulator.fail_next(
            200, headers={"content-type": "text/html"}, body="<html>login</html>", match=Match(tool="echo")
        )
        assert error_of(await proxy.request(call(5, "echo", {"message": "x"})))["message"].startswith(
            "HTTP 200 with content type text/html instead of JSON or an event stream."
        )
        await assert_serving(proxy)
        assert await proxy.close() == 0


async def test_stream_cut_after_a_progress_event(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        emulator.drop_next(after_events=1, match=Match(tool="progress"))
        await proxy.send(call(7, "progress", {"steps": 3, "delay_seconds": 0.05}, _meta={"progressToken": "p"}))
        progress = await proxy.receive()
        assert progress["method"] == "notifications/progress" and progress["params"]["progressToken"] == "p"
        error = error_of(await proxy.receive())
        assert error["message"].startswith("127.0.0.1:") and "closed the connection" in error["message"]
        await assert_serving(proxy)
        assert await proxy.close() == 0


async def test_jsonrpc_error_in_an_http_error_body_is_forwarded_under_the_requests_id(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32602, "message": "Invalid params: nope"}}
        emulator.fail_next(400, body=body, match=Match(tool="echo"))
        assert await proxy.request(call("x1", "echo", {"message": "x"})) == {
            "jsonrpc": "2.0",
            "id": "x1",
            "error": {"code": -32602, "message": "Invalid params: nope"},
        }
        assert await proxy.close() == 0


async def test_session_forgotten_again_after_reinitializing(emulator: McpEmulator) -> None:
    """One 404 is recovered from (tests/mcp_resilience); a second one right after re-initializing is reported."""
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        emulator.session_not_found_next(times=2, match=Match(tool="echo"))
        error = error_of(await proxy.request(call(9, "echo", {"message": "x"})))
        assert error["message"].startswith("HTTP 404: the server no longer knows MCP session ")
        assert "re-initializing did not help" in error["message"]
        assert error["data"]["kind"] == "session_expired"
        assert await proxy.close() == 0


async def test_failed_notification_is_logged_never_answered(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator, "--retries", "0") as proxy:
        await proxy.request(initialize_message(1))
        emulator.fail_next(503, match=Match(rpc_method="notifications/initialized"))
        await proxy.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        # the next line on stdout is the echo's answer: nothing was written for the notification
        assert (await proxy.request(call(2, "echo", {"message": "after"})))["result"]["content"][0]["text"] == "after"
        assert await proxy.close() == 0
    assert "notifications/initialized not delivered: HTTP 503" in proxy.stderr


async def test_timeout_bounds_waiting_but_never_cuts_a_delivering_stream(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator, "--timeout", "1s") as proxy:
        await proxy.initialize()
        error = error_of(await proxy.request(call(1, "sleep", {"seconds": 3})))
        assert error["message"].startswith("no response from 127.0.0.1:")
        assert error["data"] == {"kind": "read_timeout", "retryable": False}
        # 8 x 0.3 s = 2.4 s in total, but an event every 0.3 s: the stream is delivering, so it runs to the end
        response = await proxy.request(
            call(2, "progress", {"steps": 8, "delay_seconds": 0.3}, _meta={"progressToken": 2}), timeout=30
        )
        assert response["result"]["content"][0]["text"] == "done after 8 steps"
        assert await proxy.close() == 0


async def assert_serving(proxy: Any) -> None:
    response = await proxy.request(call("alive", "echo", {"message": "alive"}))
    assert json.dumps(response["result"]["content"][0]["text"]) == '"alive"'

"""`sigv4-proxy http` end to end: clients -> listener -> `emulate mcp` (verifies every signature) -> MCP SDK server."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from sigv4_proxy.clock import SkewedClock
from sigv4_proxy.credentials import StaticCredentialProvider
from sigv4_proxy.emulate import Match, McpEmulator, generate_credentials
from sigv4_proxy.errors import CredentialsError
from sigv4_proxy.http_listener import HttpListener
from sigv4_proxy.signing.model import Credentials
from tests.support.waiting import wait_until

from .conftest import Delays, proxy_config, running_listener

ACCEPT = "application/json, text/event-stream"
PROTOCOL = "2025-06-18"
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}


def sse_messages(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def messages(response: httpx.Response) -> list[dict[str, Any]]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return sse_messages(response.text)
    return [response.json()]


async def handshake(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    """initialize + notifications/initialized through the listener; returns the headers for the session."""
    response = await http.post(url, json=INIT, headers={"accept": ACCEPT})
    assert response.status_code == 200, response.text
    headers = {"accept": ACCEPT, "mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": PROTOCOL}
    done = await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    assert done.status_code == 202
    return headers


def call(request_id: int, tool: str, **arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


def tool_text(response: httpx.Response) -> str:
    (message,) = [m for m in messages(response) if "result" in m or "error" in m]
    return str(message["result"]["content"][0]["text"])


def rpc_statuses(emulator: McpEmulator, rpc: str) -> list[int]:
    return [record.status for record in emulator.requests if record.rpc.startswith(rpc)]


# --- basics --------------------------------------------------------------------------------------------------


async def test_healthz_is_answered_locally(listener: HttpListener, emulator: McpEmulator) -> None:
    seen = len(emulator.requests)
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{listener.url}/healthz")
        head = await http.head(f"{listener.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "target": emulator.url,
        "service": "execute-api",
        "region": "us-east-1",
        "signature_version": "v4",
        "credentials": emulator.credentials.masked_access_key,
        "clock_offset_seconds": 0.0,
    }
    assert (head.status_code, head.content) == (200, b"")
    assert len(emulator.requests) == seen


async def test_mcp_sdk_client_over_streamable_http(listener: HttpListener, emulator: McpEmulator) -> None:
    from mcp import Client

    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with Client(f"{listener.url}/", mode="legacy") as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "add", "progress", "large"} <= tools
        echoed = await client.call_tool("echo", {"message": "through the listener"})
        assert echoed.content[0].text == "through the listener"  # type: ignore[union-attr]
        await client.call_tool("progress", {"steps": 3, "delay_seconds": 0}, progress_callback=on_progress)
        assert progress == [1, 2, 3]
        resource = await client.read_resource("echo://hello")
        assert resource.contents[0].text == "hello"  # type: ignore[union-attr]
    assert emulator.requests and all(record.ok for record in emulator.requests)
    assert emulator.executions.duplicates() == {}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (apt-get install -y curl)")
async def test_curl_initialize_and_call(listener: HttpListener, emulator: McpEmulator) -> None:
    async def curl(*args: str) -> tuple[str, str]:
        process = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-N", "-D", "-", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        head, _, body = out.decode().partition("\r\n\r\n")
        return head, body

    common = ["-H", "content-type: application/json", "-H", f"accept: {ACCEPT}"]
    # A client's own Authorization and cookies are not forwarded: the signature takes their place.
    head, body = await curl(
        f"{listener.url}/",
        *common,
        "-H",
        "Authorization: Bearer not-for-aws",
        "-H",
        "Cookie: a=b",
        "-d",
        json.dumps(INIT),
    )
    assert head.startswith("HTTP/1.1 200")
    session = next(
        line.split(":", 1)[1].strip() for line in head.splitlines() if line.lower().startswith("mcp-session-id")
    )
    assert sse_messages(body)[0]["result"]["serverInfo"]["name"] == "sigv4-proxy-emulator"
    session_headers = [*common, "-H", f"mcp-session-id: {session}", "-H", f"mcp-protocol-version: {PROTOCOL}"]
    await curl(f"{listener.url}/", *session_headers, "-d", '{"jsonrpc":"2.0","method":"notifications/initialized"}')
    head, body = await curl(f"{listener.url}/", *session_headers, "-d", json.dumps(call(7, "add", a=2, b=40)))
    assert head.startswith("HTTP/1.1 200")
    assert sse_messages(body)[-1]["result"]["content"][0]["text"] == "42.0"
    assert all(record.ok for record in emulator.requests)


async def test_standalone_event_stream_is_streamed_not_buffered(listener: HttpListener) -> None:
    """An endless SSE stream only works if each event is passed on as it arrives."""
    async with httpx.AsyncClient(timeout=10) as http:
        headers = await handshake(http, f"{listener.url}/")
        async with http.stream("GET", f"{listener.url}/", headers={**headers, "accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            trigger = asyncio.ensure_future(http.post(f"{listener.url}/", json=call(1, "touch_tools"), headers=headers))
            received = ""
            async for chunk in stream.aiter_text():
                received += chunk
                if "notifications/tools/list_changed" in received:
                    break
            assert (await trigger).status_code == 200


async def test_other_paths_are_appended_to_the_target_path(listener: HttpListener, emulator: McpEmulator) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{listener.url}/extra/part?x=1", json=INIT, headers={"accept": ACCEPT})
    assert emulator.requests[-1].path == "/mcp/extra/part"
    assert emulator.requests[-1].ok  # the signature covered the mapped path
    assert response.status_code == 404
    assert response.json()["error"]["kind"] == "not_found"


# --- retries -------------------------------------------------------------------------------------------------


async def test_429_is_retried_after_retry_after(listener: HttpListener, emulator: McpEmulator, delays: Delays) -> None:
    async with httpx.AsyncClient() as http:
        headers = await handshake(http, f"{listener.url}/")
        emulator.throttle_next(retry_after=1, match=Match(rpc_method="tools/call"))
        response = await http.post(f"{listener.url}/", json=call(1, "echo", message="hi"), headers=headers)
    assert tool_text(response) == "hi"
    assert delays.values == [1.0]
    assert rpc_statuses(emulator, "tools/call") == [429, 200]
    assert emulator.executions.by_id() == {1: 1}


async def test_503_with_retry_after_http_date(listener: HttpListener, emulator: McpEmulator, delays: Delays) -> None:
    when = (datetime.now(timezone.utc) + timedelta(seconds=120)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    async with httpx.AsyncClient() as http:
        headers = await handshake(http, f"{listener.url}/")
        emulator.fail_next(503, headers={"Retry-After": when}, match=Match(rpc_method="tools/call"))
        response = await http.post(f"{listener.url}/", json=call(2, "echo", message="later"), headers=headers)
    assert tool_text(response) == "later"
    assert len(delays.values) == 1 and 118 <= delays.values[0] <= 120
    assert rpc_statuses(emulator, "tools/call") == [503, 200]


async def test_424_twice_then_200(listener: HttpListener, emulator: McpEmulator, delays: Delays) -> None:
    async with httpx.AsyncClient() as http:
        headers = await handshake(http, f"{listener.url}/")
        emulator.fail_next(424, times=2, error_type="RuntimeClientError", match=Match(rpc_method="tools/call"))
        response = await http.post(f"{listener.url}/", json=call(3, "echo", message="warm"), headers=headers)
    assert tool_text(response) == "warm"
    assert delays.values == [0.015, 0.03]  # the longer cold-start backoff (equal jitter)
    assert rpc_statuses(emulator, "tools/call") == [424, 424, 200]
    assert emulator.executions.by_id() == {3: 1}


async def test_gives_up_after_the_budget_with_the_diagnosis(listener: HttpListener, emulator: McpEmulator) -> None:
    async with httpx.AsyncClient() as http:
        headers = await handshake(http, f"{listener.url}/")
        emulator.fail_next(503, times=3, error_type="ServiceUnavailableException", match=Match(rpc_method="tools/call"))
        response = await http.post(f"{listener.url}/", json=call(4, "echo", message="x"), headers=headers)
    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["kind"], error["attempts"], error["retry"]) == ("unavailable", 3, "gave up after 3 attempts")
    assert error["message"] == (
        "HTTP 503 ServiceUnavailableException: Service Unavailable. Diagnosis: the service is temporarily "
        "unavailable: tried 3 times with backoff"
    )
    assert response.headers["x-sigv4-proxy-diagnosis"] == error["message"]
    assert emulator.executions.total() == 0


async def test_reset_after_execution_is_never_resent(listener: HttpListener, emulator: McpEmulator) -> None:
    async with httpx.AsyncClient() as http:
        headers = await handshake(http, f"{listener.url}/")
        emulator.drop_next(match=Match(rpc_method="tools/call"))  # executed, then the connection is reset
        response = await http.post(f"{listener.url}/", json=call(5, "echo", message="once"), headers=headers)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["kind"] in ("connection_closed", "connection_reset")
    assert error["retry"] == "not resent: the server may have started executing the request"
    assert error["attempts"] == 1
    assert emulator.executions.by_id() == {5: 1}
    assert len(rpc_statuses(emulator, "tools/call")) == 1


async def test_replay_safe_request_is_resent_after_a_reset(listener: HttpListener, emulator: McpEmulator) -> None:
    async with httpx.AsyncClient() as http:
        headers = await handshake(http, f"{listener.url}/")
        emulator.drop_next(match=Match(rpc_method="tools/list"))
        response = await http.post(
            f"{listener.url}/", json={"jsonrpc": "2.0", "id": 6, "method": "tools/list"}, headers=headers
        )
    assert response.status_code == 200
    assert "tools" in messages(response)[-1]["result"]
    assert len(rpc_statuses(emulator, "tools/list")) == 2


async def test_timeout_answers_504_and_does_not_resend(emulator: McpEmulator, delays: Delays) -> None:
    """--timeout bounds the wait for the response head (here: a server that answers late)."""
    provider = StaticCredentialProvider(emulator.credentials)
    async with (
        running_listener(proxy_config(emulator, timeout=0.3), provider, sleep=delays) as listener,
        httpx.AsyncClient() as http,
    ):
        headers = await handshake(http, f"{listener.url}/")
        emulator.delay_next(1.0, match=Match(rpc_method="tools/call"))
        response = await http.post(f"{listener.url}/", json=call(8, "echo", message="late"), headers=headers)
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["kind"] == "read_timeout"
    assert error["message"] == (
        f"no response from 127.0.0.1:{emulator.port} within the time limit. Diagnosis: the server accepted the "
        "request but did not answer in time; it may still be executing it, so it was not resent; raise --timeout "
        "for slow operations"
    )
    assert delays.values == []
    await wait_until(lambda: emulator.executions.total() > 0)
    assert emulator.executions.by_id() == {8: 1}


async def test_slow_stream_is_not_cut_by_the_timeout(emulator: McpEmulator) -> None:
    """The head arrives at once (SSE); the result 1 s later: a stream is never cut by --timeout."""
    provider = StaticCredentialProvider(emulator.credentials)
    async with (
        running_listener(proxy_config(emulator, timeout=0.3), provider) as listener,
        httpx.AsyncClient() as http,
    ):
        headers = await handshake(http, f"{listener.url}/")
        response = await http.post(f"{listener.url}/", json=call(13, "sleep", seconds=1), headers=headers)
    assert tool_text(response) == "slept 1s"


async def test_unreachable_target_is_retried_then_diagnosed(
    emulator: McpEmulator, delays: Delays, closed_port: int
) -> None:
    config = proxy_config(emulator, target_url=f"http://127.0.0.1:{closed_port}/mcp")
    async with (
        running_listener(config, StaticCredentialProvider(emulator.credentials), sleep=delays) as listener,
        httpx.AsyncClient() as http,
    ):
        response = await http.post(f"{listener.url}/", json=INIT, headers={"accept": ACCEPT})
    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["kind"], error["attempts"], error["status"]) == ("connection_refused", 3, None)
    assert error["message"] == (
        f"connection to 127.0.0.1:{closed_port} refused. Diagnosis: nothing is listening at 127.0.0.1:{closed_port}: "
        "check that the server is running and the target URL's port; on AWS check security groups and network ACLs "
        "(gave up after 3 attempts)"
    )
    assert delays.values == [0.005, 0.01]


# --- recovery: clock skew and expired credentials ------------------------------------------------------------


async def test_clock_ten_minutes_behind_is_corrected_after_one_retry(emulator: McpEmulator) -> None:
    behind = SkewedClock(now=lambda: datetime.now(timezone.utc) - timedelta(minutes=10))
    provider = StaticCredentialProvider(emulator.credentials)
    async with (
        running_listener(proxy_config(emulator), provider, clock=behind) as listener,
        httpx.AsyncClient() as http,
    ):
        headers = await handshake(http, f"{listener.url}/")
        response = await http.post(f"{listener.url}/", json=call(9, "echo", message="on time"), headers=headers)
        health = (await http.get(f"{listener.url}/healthz")).json()
    assert tool_text(response) == "on time"
    assert 595 <= behind.offset <= 605
    assert 595 <= health["clock_offset_seconds"] <= 605
    first, *rest = emulator.requests
    assert (first.status, first.verdict) == (403, "InvalidSignatureException")
    assert all(record.ok for record in rest)  # one corrected retry; every later request signed right


class RotatingProvider:
    """Credentials that a refresh replaces (as botocore's refreshable credentials do)."""

    method = "sso"
    profile: str | None = None

    def __init__(self, *sets: Credentials | Exception) -> None:
        self.sets = list(sets)
        self.refreshes = 0

    def _current(self) -> Credentials:
        current = self.sets[0]
        if isinstance(current, Exception):
            raise current
        return current

    def get(self, now: datetime | None = None) -> Credentials:
        return self._current()

    def cached(self, now: datetime | None = None) -> Credentials | None:
        return self._current()

    def force_refresh(self) -> Credentials:
        self.refreshes += 1
        self.sets.pop(0)
        return self._current()


async def test_expired_token_forces_one_refresh_and_retry(emulator: McpEmulator) -> None:
    old = generate_credentials(session_token=True)
    new = generate_credentials(session_token=True)
    emulator.accept_only(old, new)
    provider = RotatingProvider(old, new)
    async with running_listener(proxy_config(emulator), provider) as listener, httpx.AsyncClient() as http:
        headers = await handshake(http, f"{listener.url}/")
        emulator.expire_credentials(old.access_key_id)
        response = await http.post(f"{listener.url}/", json=call(10, "echo", message="fresh"), headers=headers)
    assert tool_text(response) == "fresh"
    assert provider.refreshes == 1
    assert [r.verdict for r in emulator.requests if r.rpc.startswith("tools/call")] == ["ExpiredTokenException", "ok"]


async def test_failed_refresh_says_how_to_log_in(emulator: McpEmulator) -> None:
    old = generate_credentials(session_token=True)
    emulator.accept_only(old)
    login = CredentialsError("the AWS SSO session has expired or is not logged in: run `aws sso login --profile dev`")
    async with (
        running_listener(proxy_config(emulator), RotatingProvider(old, login)) as listener,
        httpx.AsyncClient() as http,
    ):
        headers = await handshake(http, f"{listener.url}/")
        emulator.expire_credentials(old.access_key_id)
        response = await http.post(f"{listener.url}/", json=call(11, "echo", message="x"), headers=headers)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["kind"] == "credentials"
    assert error["message"] == (
        "the AWS SSO session has expired or is not logged in: run `aws sso login --profile dev`. Diagnosis: fix the "
        "credential source named above; the request was not sent"
    )


# --- diagnosis of final failures -----------------------------------------------------------------------------


async def test_wrong_service_becomes_a_json_diagnosis(emulator: McpEmulator) -> None:
    provider = StaticCredentialProvider(emulator.credentials)
    async with (
        running_listener(proxy_config(emulator, service="lambda"), provider) as listener,
        httpx.AsyncClient() as http,
    ):
        response = await http.post(f"{listener.url}/", json=INIT, headers={"accept": ACCEPT})
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == "InvalidSignatureException"
    body = response.json()
    expected = (
        "HTTP 403 InvalidSignatureException: Credential should be scoped to correct service: 'execute-api'. "
        "Diagnosis: signed for service 'lambda' but the server expects 'execute-api': use --service-name execute-api"
    )
    assert body["error"]["message"] == expected
    assert response.headers["x-sigv4-proxy-diagnosis"] == expected
    assert (body["error"]["kind"], body["error"]["status"], body["error"]["attempts"]) == ("wrong_service", 403, 1)
    assert body["upstream"]["status"] == 403
    assert json.loads(body["upstream"]["body"]) == {
        "message": "Credential should be scoped to correct service: 'execute-api'. "
    }


async def test_raw_errors_pass_the_upstream_body(emulator: McpEmulator) -> None:
    provider = StaticCredentialProvider(emulator.credentials)
    async with (
        running_listener(proxy_config(emulator, service="lambda"), provider, raw_errors=True) as listener,
        httpx.AsyncClient() as http,
    ):
        response = await http.post(f"{listener.url}/", json=INIT, headers={"accept": ACCEPT})
    assert response.status_code == 403
    assert response.json() == {"message": "Credential should be scoped to correct service: 'execute-api'. "}
    assert response.headers["x-sigv4-proxy-diagnosis"].startswith("HTTP 403 InvalidSignatureException")


async def test_jsonrpc_error_bodies_pass_through(listener: HttpListener, emulator: McpEmulator) -> None:
    async with httpx.AsyncClient() as http:
        headers = await handshake(http, f"{listener.url}/")
        emulator.session_not_found_next(match=Match(rpc_method="tools/call"))
        response = await http.post(f"{listener.url}/", json=call(12, "echo", message="x"), headers=headers)
    assert response.status_code == 404
    assert response.json() == {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Session not found"}}
    assert response.headers["x-sigv4-proxy-diagnosis"].startswith("HTTP 404: Session not found. Diagnosis: nothing at")


async def test_request_body_over_the_limit_gets_413(emulator: McpEmulator) -> None:
    provider = StaticCredentialProvider(emulator.credentials)
    seen = len(emulator.requests)
    async with (
        running_listener(proxy_config(emulator, max_message_bytes=1000), provider) as listener,
        httpx.AsyncClient() as http,
    ):
        response = await http.post(f"{listener.url}/", content=b"x" * 2000, headers={"content-type": "text/plain"})

        async def chunks() -> AsyncIterator[bytes]:  # no content-length: the limit applies while reading
            yield b"y" * 600
            yield b"y" * 600

        chunked = await http.post(f"{listener.url}/", content=chunks(), headers={"content-type": "text/plain"})
    assert (response.status_code, chunked.status_code) == (413, 413)
    assert response.json()["error"]["message"] == (
        "request body larger than 1000 bytes: raise --max-message-bytes (the body is read completely because the "
        "signature covers its SHA-256)"
    )
    assert len(emulator.requests) == seen


async def test_keep_alive_serves_many_requests_on_one_connection(listener: HttpListener) -> None:
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1))
    async with httpx.AsyncClient(transport=transport) as http:
        headers = await handshake(http, f"{listener.url}/")
        results = [
            tool_text(await http.post(f"{listener.url}/", json=call(100 + n, "echo", message=str(n)), headers=headers))
            for n in range(5)
        ]
    assert results == ["0", "1", "2", "3", "4"]


async def test_concurrent_requests(listener: HttpListener, emulator: McpEmulator) -> None:
    async with httpx.AsyncClient() as http:
        headers = await handshake(http, f"{listener.url}/")
        responses = await asyncio.gather(
            *(
                http.post(f"{listener.url}/", json=call(200 + n, "echo", message=str(n)), headers=headers)
                for n in range(16)
            )
        )
    assert [tool_text(r) for r in responses] == [str(n) for n in range(16)]
    assert emulator.executions.duplicates() == {}


async def test_encoded_path_is_signed_as_sent(listener: HttpListener, emulator: McpEmulator) -> None:
    """An AgentCore-style `/runtimes/<url-encoded ARN>/invocations` path keeps its encoding and verifies."""
    arn = "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fr-1"
    async with httpx.AsyncClient() as http:
        await http.post(
            f"{listener.url}/runtimes/{arn}/invocations?qualifier=DEFAULT", json=INIT, headers={"accept": ACCEPT}
        )
    record = emulator.requests[-1]
    assert record.path == f"/mcp/runtimes/{unquote(arn)}/invocations"  # the emulator logs the decoded path
    assert record.ok  # ... and verified the signature over the encoded one


async def raw_exchange(listener: HttpListener, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(-1), 10)  # until the listener closes the connection
    writer.close()
    return data


async def test_pipelined_requests_and_http_10(listener: HttpListener) -> None:
    pipelined = (
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    answer = await raw_exchange(listener, pipelined)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert answer.count(b'"status": "ok"') == 2
    old = await raw_exchange(listener, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert old.startswith(b"HTTP/1.1 200 OK\r\n") and old.endswith(b"}\n")


async def test_malformed_request_gets_400(listener: HttpListener) -> None:
    answer = await raw_exchange(listener, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"malformed HTTP request" in answer


async def test_client_hanging_up_cancels_the_upstream_stream(listener: HttpListener) -> None:
    listener.hangup_drain_seconds = 0.05  # an idle event stream never ends: cut it after this
    async with httpx.AsyncClient(timeout=10) as http:
        headers = await handshake(http, f"{listener.url}/")
        async with http.stream("GET", f"{listener.url}/", headers={**headers, "accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            await wait_until(lambda: listener._active_requests == 1)
    await wait_until(lambda: listener._active_requests == 0)


async def test_shutdown_cuts_event_streams_and_lets_requests_finish(emulator: McpEmulator) -> None:
    provider = StaticCredentialProvider(emulator.credentials)
    async with running_listener(proxy_config(emulator), provider) as listener, httpx.AsyncClient(timeout=10) as http:
        headers = await handshake(http, f"{listener.url}/")
        async with http.stream("GET", f"{listener.url}/", headers={**headers, "accept": "text/event-stream"}) as stream:
            await wait_until(lambda: listener._active_requests == 1)
            slow = asyncio.ensure_future(
                http.post(f"{listener.url}/", json=call(20, "sleep", seconds=0.3), headers=headers)
            )
            await wait_until(lambda: listener._active_requests == 2)
            await listener.aclose(grace=5)
            assert tool_text(await slow) == "slept 0.3s"
            with pytest.raises(httpx.HTTPError):
                async for _ in stream.aiter_raw():
                    pass

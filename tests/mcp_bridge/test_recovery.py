"""What the bridge recovers from, in process: retries (429/503, Retry-After, the budget, what is never resent),
an expired token (one refresh, one re-signed retry), a wrong clock (one correction), and a forgotten session
(a private re-initialize, then the request again)."""

from __future__ import annotations

from datetime import timedelta

from sigv4_proxy.credentials import CredentialsError
from sigv4_proxy.mcp.jsonrpc import UPSTREAM_ERROR

from .harness import FIRST, SECOND, FakeCredentials, FakeServer, call, running_bridge


def text_of(answer: dict) -> str:  # type: ignore[type-arg]
    return answer["result"]["content"][0]["text"]


async def test_a_503_is_retried_with_backoff_and_the_tool_runs_once() -> None:
    server = FakeServer()
    server.fail_next("echo", 503)
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        assert text_of(await proxy.request(call("u", "echo", {"message": "once"}))) == "once"
        assert await proxy.finish() == 0
    assert server.rpc()[-2:] == [("tools/call echo", 503), ("tools/call echo", 200)]
    assert server.executions == {'"u"': 1}
    assert len(proxy.sleeps) == 1  # one backoff, taken through the injected sleep


async def test_retries_end_with_the_budget_and_say_how_often_they_tried() -> None:
    server = FakeServer()
    server.fail_next("echo", 503, times=3)
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        error = (await proxy.request(call("unavailable", "echo", {"message": "x"})))["error"]
        assert error == {
            "code": UPSTREAM_ERROR,
            "message": "HTTP 503. Diagnosis: the gateway could not get a valid answer from the backend (502/503; "
            "restarting, overloaded, or a malformed backend response): tried 3 times with backoff; if it persists, "
            "check the backend's logs",
            "data": {"kind": "unavailable", "retryable": True, "status": 503, "attempts": 3},
        }
        assert await proxy.finish() == 0
    assert len(proxy.sleeps) == 2


async def test_no_retries_with_a_budget_of_zero() -> None:
    server = FakeServer()
    server.fail_next("echo", 503)
    async with running_bridge(server, retries=0) as proxy:
        await proxy.initialize()
        error = (await proxy.request(call(1, "echo", {"message": "x"})))["error"]
        assert error["message"].startswith("HTTP 503. Diagnosis: ") and "attempts" not in error["data"]
        assert await proxy.finish() == 0
    assert proxy.sleeps == []


async def test_a_429_waits_as_retry_after_asks() -> None:
    server = FakeServer()
    server.fail_next("echo", 429, headers=[("retry-after", "1"), ("x-amzn-ErrorType", "TooManyRequestsException")],
                     body={"message": "Too Many Requests"})  # fmt: skip
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        assert text_of(await proxy.request(call("t", "echo", {"message": "patience"}))) == "patience"
        assert await proxy.finish() == 0
    assert proxy.sleeps == [1.0]


async def test_a_429_asking_for_too_long_a_wait_is_reported_at_once() -> None:
    server = FakeServer()
    server.fail_next("echo", 429, headers=[("retry-after", "300"), ("x-amzn-ErrorType", "TooManyRequestsException")],
                     body={"message": "Too Many Requests"})  # fmt: skip
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        error = (await proxy.request(call("later", "echo", {"message": "x"})))["error"]
        assert error["message"] == (
            "HTTP 429 TooManyRequestsException: Too Many Requests. Diagnosis: the server is throttling requests: "
            "not retried; if it persists, lower the request rate or ask for a higher quota (the server asked to "
            "retry after 5 min, longer than the 2 min this proxy waits)"
        )
        assert await proxy.finish() == 0
    assert proxy.sleeps == []


async def test_a_500_is_not_resent() -> None:
    server = FakeServer()
    server.fail_next("echo", 500)
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        error = (await proxy.request(call("internal", "echo", {"message": "x"})))["error"]
        assert error["message"] == (
            "HTTP 500. Diagnosis: the server failed while handling the request: it may have been executed, so it "
            "was not resent; check the server's logs"
        )
        assert await proxy.finish() == 0
    assert server.rpc().count(("tools/call echo", 500)) == 1


async def test_an_expired_token_is_refreshed_once_and_the_request_resigned() -> None:
    server = FakeServer()
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        server.expired.add(FIRST.access_key_id)  # the server now says: expired
        assert text_of(await proxy.request(call(2, "echo", {"message": "second key"}))) == "second key"
        assert text_of(await proxy.request(call(3, "echo", {"message": "still"}))) == "still"
        assert await proxy.finish() == 0
    assert proxy.credentials.refreshes == 1 and proxy.credentials.current is SECOND
    assert server.rpc()[-3:] == [("tools/call echo", 403), ("tools/call echo", 200), ("tools/call echo", 200)]
    assert server.executions == {"2": 1, "3": 1}


async def test_a_failed_refresh_is_reported_and_the_next_request_tries_again() -> None:
    server = FakeServer()
    failing = FakeCredentials(refresh_error=CredentialsError("the SSO session has expired"))
    async with running_bridge(server, credentials=failing) as proxy:
        await proxy.initialize()
        server.expired.add(FIRST.access_key_id)
        error = (await proxy.request(call(2, "echo", {"message": "x"})))["error"]
        assert error["data"]["kind"] == "expired_token"
        assert error["message"].endswith(" Refreshing the credentials failed: the SSO session has expired")
        failing.refresh_error = None
        assert text_of(await proxy.request(call(3, "echo", {"message": "back"}))) == "back"
        assert await proxy.finish() == 0
    assert failing.refreshes == 2


async def test_keys_from_the_environment_are_not_refreshed() -> None:
    server = FakeServer()
    env_keys = FakeCredentials(method="env")
    async with running_bridge(server, credentials=env_keys) as proxy:
        await proxy.initialize()
        server.expired.add(FIRST.access_key_id)
        error = (await proxy.request(call(2, "echo", {"message": "x"})))["error"]
        assert error["data"]["kind"] == "expired_token"
        assert await proxy.finish() == 0
    assert env_keys.refreshes == 0


async def test_a_wrong_clock_is_corrected_after_one_refusal() -> None:
    server = FakeServer()
    server.offset = timedelta(minutes=10)  # the proxy's clock is 10 minutes behind the server's
    async with running_bridge(server) as proxy:
        assert (await proxy.initialize())["id"] == 1
        assert text_of(await proxy.request(call(2, "echo", {"message": "on time"}))) == "on time"
        assert await proxy.finish() == 0
    assert server.rpc()[:2] == [("initialize", 403), ("initialize", 200)]
    assert all(status < 400 for _, status in server.rpc()[1:])
    clock = proxy.bridge.clock
    assert clock is not None and 599 <= clock.offset <= 601


async def test_a_forgotten_session_is_reestablished_and_the_request_resent() -> None:
    server = FakeServer()
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        server.fail_next("echo", forget_session=True)
        assert text_of(await proxy.request(call(5, "echo", {"message": "again"}))) == "again"
        assert await proxy.finish() == 0
    assert server.rpc() == [
        ("initialize", 200),
        ("notifications/initialized", 202),
        ("tools/call echo", 404),
        ("initialize", 200),  # the client's own initialize, privately
        ("notifications/initialized", 202),
        ("tools/call echo", 200),
    ]
    assert [message.get("id") for message in proxy.stdout.messages] == [1, 5]  # the client saw none of it
    assert proxy.bridge.session.session_id == "session-2" and proxy.bridge.session.epoch == 2


async def test_a_session_forgotten_again_after_reinitializing_is_reported() -> None:
    server = FakeServer()
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        server.fail_next("echo", forget_session=True, times=2)
        error = (await proxy.request(call(9, "echo", {"message": "x"})))["error"]
        assert error["message"] == (
            "HTTP 404: the server no longer knows MCP session session-2 (it restarted or expired the session), and "
            "re-initializing did not help. Diagnosis: check the server's logs; restarting the MCP client's "
            "connection starts afresh"
        )
        assert error["data"] == {"kind": "session_expired", "retryable": False, "status": 404}
        assert await proxy.finish() == 0

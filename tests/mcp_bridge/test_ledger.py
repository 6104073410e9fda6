"""Exactly one answer per request, in process: the happy path, malformed and over-size lines, duplicate ids,
batches, a server that answers twice, upstream failures, cancellation, the request deadline, and shutdown with
requests in flight (the grace period), all ordered by events instead of sleeps."""

from __future__ import annotations

import asyncio
import json

import httpx

from sigv4_proxy.mcp.jsonrpc import INVALID_REQUEST, PARSE_ERROR, UPSTREAM_ERROR

from .harness import FIRST, INITIALIZED, FakeServer, call, initialize, running_bridge

SHUTDOWN_ERROR = "the proxy shut down before the server answered this request"


async def test_a_session_round_trip_is_signed_and_answered_once() -> None:
    async with running_bridge() as proxy:
        answer = await proxy.initialize()
        assert answer["id"] == 1 and answer["result"]["protocolVersion"] == "2025-06-18"
        echoed = await proxy.request(call(2, "echo", {"message": "héllo"}))
        assert echoed == {"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text", "text": "héllo"}]}}
        assert await proxy.finish() == 0
    assert proxy.server.rpc() == [("initialize", 200), ("notifications/initialized", 202), ("tools/call echo", 200)]
    assert [record.session for record in proxy.server.records[1:3]] == ["session-1", "session-1"]
    assert proxy.server.rpc("DELETE") == [("DELETE", 200)]  # the session is ended at shutdown
    assert proxy.stdout.nothing_more()


async def test_malformed_lines_get_parse_and_invalid_request_errors() -> None:
    async with running_bridge() as proxy:
        error = await proxy.request(b"{not json")
        assert error["id"] is None and error["error"]["code"] == PARSE_ERROR
        assert error["error"]["message"].startswith("Parse error: the message is not valid JSON (")
        error = await proxy.request({"jsonrpc": "2.0", "result": 1})
        assert error["error"] == {
            "code": INVALID_REQUEST,
            "message": "Invalid Request: not a JSON-RPC request, notification or response",
        }
        assert await proxy.finish() == 0
    assert proxy.server.records == []  # nothing malformed was forwarded


async def test_an_oversize_request_is_answered_and_an_oversize_notification_is_not() -> None:
    async with running_bridge(max_message_bytes=1000) as proxy:
        proxy.stdin.send_oversize(b'{"jsonrpc":"2.0","method":"notifications/progress","params":{', 5000)
        proxy.stdin.send_oversize(b'{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{', 5000)
        error = await proxy.stdout.receive()
        assert error == {
            "jsonrpc": "2.0",
            "id": "big",
            "error": {
                "code": INVALID_REQUEST,
                "message": "Invalid Request: message of 5000 bytes exceeds the limit of 1000 bytes "
                "(--max-message-bytes); it was not forwarded",
            },
        }
        assert await proxy.finish() == 0
    assert len(proxy.stdout.messages) == 1


async def test_a_duplicate_id_in_flight_is_refused_and_the_first_still_answered() -> None:
    server = FakeServer()
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        gate = server.gate("g")
        proxy.stdin.send(call(7, "block", {"gate": "g"}))
        await server.started["g"].wait()
        refused = await proxy.request(call(7, "echo", {"message": "again"}))
        assert refused["error"] == {
            "code": INVALID_REQUEST,
            "message": "Invalid Request: a request with id 7 is already in flight",
        }
        gate.set()
        assert (await proxy.stdout.receive())["result"]["content"][0]["text"] == "released g"
        assert await proxy.finish() == 0
    assert server.executions == {"7": 1}


async def test_a_batch_gets_its_answers_once() -> None:
    async with running_bridge() as proxy:
        await proxy.initialize()
        batch = [{"jsonrpc": "2.0", "id": "a", "method": "ping"}, {"jsonrpc": "2.0", "id": "b", "method": "ping"}]
        answers = await proxy.request(batch)
        assert sorted(answer["id"] for answer in answers) == ["a", "b"]
        assert await proxy.finish() == 0
    assert proxy.bridge.pending.all() == []


async def test_a_response_the_server_repeats_reaches_the_client_once() -> None:
    async with running_bridge() as proxy:
        await proxy.initialize()
        assert (await proxy.request(call(3, "twice")))["result"]["content"][0]["text"] == "once"
        assert await proxy.finish() == 0
    assert [message.get("id") for message in proxy.stdout.messages] == [1, 3]


async def test_progress_notifications_precede_the_answer() -> None:
    async with running_bridge() as proxy:
        await proxy.initialize()
        proxy.stdin.send(call(4, "progress", {"steps": 2}, _meta={"progressToken": "p"}))
        first, second, answer = [await proxy.stdout.receive() for _ in range(3)]
        assert [first["params"]["progress"], second["params"]["progress"]] == [1, 2]
        assert answer["id"] == 4 and answer["result"]["content"][0]["text"] == "done after 2 steps"
        assert await proxy.finish() == 0


async def test_an_empty_200_is_one_error_and_the_proxy_keeps_serving() -> None:
    server = FakeServer()
    server.fail_next("echo", 200)
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        error = await proxy.request(call("empty", "echo", {"message": "x"}))
        assert error["error"] == {
            "code": UPSTREAM_ERROR,
            "message": "HTTP 200 with an empty body instead of a JSON-RPC response. Diagnosis: the server or a gateway "
            "in front of it lost the response (a function that returned nothing, an integration timeout); check the "
            "server's logs",
            "data": {"kind": "unexpected_response", "status": 200},
        }
        assert (await proxy.request(call("alive", "echo", {"message": "alive"})))["id"] == "alive"
        assert await proxy.finish() == 0
    assert server.rpc().count(("tools/call echo", 200)) == 2  # not resent


async def test_a_202_for_a_request_is_an_error() -> None:
    server = FakeServer()
    server.fail_next("echo", 202)
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        error = await proxy.request(call(5, "echo", {"message": "x"}))
        assert error["error"]["message"].startswith("HTTP 202 Accepted for a request, so no response will follow.")
        assert await proxy.finish() == 0


async def test_a_jsonrpc_error_in_an_http_error_body_is_forwarded_under_the_requests_id() -> None:
    server = FakeServer()
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32602, "message": "Invalid params: nope"}}
    server.fail_next("echo", 400, body=body, headers=[("content-type", "application/json")])
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        assert await proxy.request(call("x1", "echo", {"message": "x"})) == {
            "jsonrpc": "2.0",
            "id": "x1",
            "error": {"code": -32602, "message": "Invalid params: nope"},
        }
        assert await proxy.finish() == 0


async def test_a_broken_connection_is_one_error_and_a_failed_notification_none() -> None:
    server = FakeServer()
    server.fail_next("tools/call", error=httpx.RemoteProtocolError("peer closed connection"))
    server.fail_next("notifications/roots/list_changed", 503)
    async with running_bridge(server, retries=0) as proxy:
        await proxy.initialize()
        error = await proxy.request(call(6, "echo", {"message": "x"}))
        assert error["id"] == 6 and error["error"]["code"] == UPSTREAM_ERROR
        assert error["error"]["data"]["kind"] == "connection_closed"
        proxy.stdin.send({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"})
        assert (await proxy.request(call(8, "echo", {"message": "after"})))["id"] == 8  # nothing in between
        assert await proxy.finish() == 0
    assert server.faults == []


async def test_cancelling_a_2026_request_closes_its_stream_and_answers_nothing() -> None:
    server = FakeServer()
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    async with running_bridge(server) as proxy:
        server.sessions.add(None)  # type: ignore[arg-type]  # (a 2026 server has no sessions)
        server.gate("never")
        proxy.stdin.send(call("c", "block", {"gate": "never"}, _meta=meta))
        await server.started["never"].wait()
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "c", "_meta": meta}}
        proxy.stdin.send(cancel)
        pending = proxy.bridge.pending
        assert await proxy.finish() == 0
    assert proxy.stdout.messages == [] and len(pending) == 0
    assert [rpc for rpc, _ in server.rpc()] == ["tools/call block"]  # the cancellation was not forwarded


async def test_the_request_deadline_answers_a_request_the_server_keeps_open() -> None:
    server = FakeServer()
    async with running_bridge(server, request_deadline=0.05) as proxy:
        await proxy.initialize()
        server.gate("never")
        error = await proxy.request(call("slow", "block", {"gate": "never"}))
        assert error["error"]["message"].startswith(
            "no response within the request deadline of 0.05 s (--request-deadline): the proxy stopped waiting"
        )
        assert error["error"]["data"] == {"kind": "request_deadline", "retryable": False}
        assert await proxy.finish() == 0


async def test_requests_outliving_the_grace_period_get_an_error() -> None:
    """In-process counterpart of the e2e test that needs a sleep: the call is known to be in flight (the
    server saw it) before the stop, and a zero grace period leaves no room for it to finish."""
    server = FakeServer()
    async with running_bridge(server, grace_seconds=0) as proxy:
        await proxy.initialize()
        server.gate("never")
        proxy.stdin.send(call("slow", "block", {"gate": "never"}))
        await server.started["never"].wait()
        proxy.bridge.stop("SIGTERM")
        assert await proxy.stdout.receive() == {
            "jsonrpc": "2.0",
            "id": "slow",
            "error": {"code": UPSTREAM_ERROR, "message": SHUTDOWN_ERROR},
        }
        assert await asyncio.wait_for(proxy.task, 5) == 0
    assert proxy.stdin.closed and proxy.stdout.closed


async def test_requests_in_flight_at_end_of_input_finish_within_the_grace_period() -> None:
    server = FakeServer()
    async with running_bridge(server) as proxy:
        await proxy.initialize()
        gate = server.gate("g")
        proxy.stdin.send(call(9, "block", {"gate": "g"}))
        await server.started["g"].wait()
        proxy.stdin.end()
        gate.set()
        assert (await proxy.stdout.receive())["result"]["content"][0]["text"] == "released g"
        assert await asyncio.wait_for(proxy.task, 5) == 0
    assert server.rpc("DELETE") == [("DELETE", 200)]


async def test_stdout_going_away_stops_the_bridge() -> None:
    async with running_bridge() as proxy:
        await proxy.initialize()
        proxy.stdout.gone = True
        proxy.stdin.send(json.dumps(call(2, "echo", {"message": "x"})))
        await asyncio.wait_for(proxy.stdout.refused.wait(), 5)  # the answer's write found stdout gone
        proxy.stdin.send(INITIALIZED)  # the next line read notices it
        assert await asyncio.wait_for(proxy.task, 5) == 0
    assert proxy.bridge.stopping.is_set()


async def test_the_signature_is_checked_by_the_fake_server() -> None:
    """The harness's server is a verifying fake: a wrong secret is refused as API Gateway refuses it."""
    server = FakeServer(credentials=[type(FIRST)(FIRST.access_key_id, "not-the-secret" * 3, FIRST.session_token)])
    async with running_bridge(server) as proxy:
        error = await proxy.request(initialize(1))
        assert error["error"]["message"].startswith(
            "HTTP 403 InvalidSignatureException: The request signature we calculated does not match"
        )
        assert error["error"]["data"]["kind"] == "signature_mismatch"
        assert await proxy.finish() == 0


async def test_an_initialize_cancelled_before_it_started_does_not_hold_later_messages() -> None:
    """A 2026-era initialize cancelled at once (both lines in one read) never ran: its gate must open anyway."""
    meta = {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}
    modern = initialize("i")
    modern["params"].update(meta)
    server = FakeServer()
    server.sessions.add(None)  # type: ignore[arg-type]  # (a 2026 server has no sessions)
    async with running_bridge(server) as proxy:
        proxy.stdin.send(modern)
        proxy.stdin.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "i", **meta}})
        answer = await proxy.request({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": meta})
        assert answer == {"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "echo"}]}}
        assert await proxy.finish() == 0
    assert proxy.stdout.messages == [answer] and server.rpc() == [("tools/list", 200)]

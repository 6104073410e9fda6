"""A hostile upstream (:mod:`tests.support.hostile`) cannot make the proxy grow without bound, hang a request
forever, answer a request twice, or write invalid JSON.

Each answer that is too large (a JSON body, a gzip bomb, an endless event-stream line, a huge event on the
legacy transport's one stream, a huge event on the standalone stream) gets exactly one JSON-RPC error naming
``--max-message-bytes``, the proxy stops reading (the server sees the connection closed long before it has
sent everything), and the next request works. The sizes are kept small by a 1 MiB limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mcp_proxy.harness import RawProxy
from tests.support.hostile import HostileServer, Record

from .helpers import assert_nothing_else, call, error_of, exchange, resilient_proxy

CAP = ("--max-message-bytes", "1MiB")
TOO_LARGE = "response larger than 1048576 bytes (--max-message-bytes): "
SIZE = 64 * 1024 * 1024  # what a hostile answer would be: 64 times the limit
STOPPED_READING = 32 * 1024 * 1024  # sent before the server noticed: the limit plus the sockets' buffers at most


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    """Streamable HTTP; the tool name of each call picks the misbehaviour."""
    with HostileServer(size=SIZE) as server:
        yield server


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "gzip"])
def legacy(request: pytest.FixtureRequest) -> Iterator[HostileServer]:
    """The legacy HTTP+SSE transport; ``gzip``: the event stream is gzip-encoded, so a huge event is a bomb."""
    with HostileServer(size=SIZE, legacy=True, gzip_streams=request.param) as server:
        yield server


def record_of(server: HostileServer, request_id: str) -> Record:
    return server.wait_for(lambda record: record.rpc_id == request_id and record.finished)


def assert_stopped_reading(record: Record) -> None:
    assert record.client_closed and not record.completed, record
    assert record.bytes_sent < STOPPED_READING, f"the server sent {record.bytes_sent} bytes of {SIZE}"


def event_streams(server: HostileServer) -> list[Record]:
    return [record for record in server.records if record.mode == "stream"]


def strict_json(line: bytes) -> Any:
    """What any JSON parser accepts (Python's also takes NaN and Infinity)."""
    return json.loads(line, parse_constant=lambda name: pytest.fail(f"invalid JSON on stdout ({name}): {line!r}"))


def peak_rss(proxy: RawProxy) -> int:
    """The proxy's peak resident memory so far, in bytes (Linux)."""
    status = Path(f"/proc/{proxy.process.pid}/status")
    if not status.exists():
        pytest.skip("needs /proc to read a process's peak memory")
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


async def too_large(proxy: RawProxy, request_id: str, tool: str) -> dict[str, Any]:
    """Call a hostile tool: exactly one answer, the error naming the flag, and the proxy keeps serving."""
    error = error_of(await exchange(proxy, call(request_id, tool)))
    assert error["message"].startswith(TOO_LARGE), error
    assert error["data"]["kind"] == "response_too_large"
    await assert_nothing_else(proxy)
    return error


# --- item 4: response bounds ------------------------------------------------------------------------------------


async def test_a_json_body_over_the_limit_gets_one_error_and_is_not_read_to_its_end(hostile: HostileServer) -> None:
    async with resilient_proxy(hostile, *CAP) as proxy:
        await proxy.initialize()
        await too_large(proxy, "json-1", "huge_json")
        assert await proxy.close() == 0
    assert_stopped_reading(record_of(hostile, "json-1"))
    assert 'tools/call id="json-1" failed: response larger than 1048576 bytes' in proxy.stderr


async def test_a_gzip_bomb_is_cut_while_it_is_decompressed(hostile: HostileServer) -> None:
    """256 MiB once decompressed, about 250 KB on the wire: the limit counts decompressed bytes as they come."""
    hostile.size = 256 * 1024 * 1024
    try:
        async with resilient_proxy(hostile, *CAP) as proxy:
            await proxy.initialize()
            before = peak_rss(proxy)
            await too_large(proxy, "bomb-1", "gzip_bomb")
            grown = peak_rss(proxy) - before
            assert await proxy.close() == 0
    finally:
        hostile.size = SIZE
    record = record_of(hostile, "bomb-1")
    assert record.bytes_sent < 1024 * 1024  # it was a bomb: small on the wire
    # one network read (64 KiB) may expand ~1000 times before it is counted; the bomb itself is 256 MiB
    assert grown < 128 * 1024 * 1024, f"peak memory grew by {grown >> 20} MiB"


async def test_an_endless_event_stream_line_is_cut_at_the_limit(hostile: HostileServer) -> None:
    async with resilient_proxy(hostile, *CAP) as proxy:
        await proxy.initialize()
        await too_large(proxy, "line-1", "huge_sse_line")
        assert await proxy.close() == 0
    assert_stopped_reading(record_of(hostile, "line-1"))


async def test_a_huge_event_on_the_legacy_stream_ends_that_session_and_the_next_request_gets_a_new_one(
    legacy: HostileServer,
) -> None:
    async with resilient_proxy(legacy, "--transport", "sse", *CAP) as proxy:
        await proxy.initialize()
        session_stream = event_streams(legacy)[-1]
        await too_large(proxy, "legacy-1", "huge_json")  # ... and the probe after it re-initializes first
        assert event_streams(legacy)[-1] is not session_stream  # a new session, on a new stream
        assert await proxy.close() == 0
    assert session_stream.client_closed and session_stream.bytes_sent < STOPPED_READING
    assert "legacy SSE event stream ended (closed by the proxy: a message was larger than --max-message-bytes)" in (
        proxy.stderr
    )


async def test_a_huge_event_on_the_standalone_stream_is_dropped_with_a_warning_naming_the_flag() -> None:
    with HostileServer(size=SIZE, get_mode="huge_sse_line") as server:
        async with resilient_proxy(server, "--sse", *CAP) as proxy:
            await proxy.initialize()
            get = server.wait_for(lambda record: record.method == "GET" and record.finished)
            assert get.client_closed and get.bytes_sent < STOPPED_READING
            await assert_nothing_else(proxy)  # nothing of it reached stdout, and requests go on
            assert await proxy.close() == 0
    assert (
        "standalone event stream: a message larger than 1048576 bytes (--max-message-bytes) was not delivered"
        in proxy.stderr
    )


async def test_within_the_limit_nothing_changes(hostile: HostileServer) -> None:
    hostile.size = 1024 * 1024 - 100  # the whole response: just under 1 MiB
    try:
        async with resilient_proxy(hostile, *CAP) as proxy:
            await proxy.initialize()
            for tool in ("huge_json", "gzip_bomb", "huge_sse_line"):
                response = await exchange(proxy, call(f"fits-{tool}", tool))
                assert len(response["result"]["content"][0]["text"]) == hostile.size
            assert await proxy.close() == 0
    finally:
        hostile.size = SIZE


# --- item 4: --request-deadline ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "flags"),
    [("endless_sse", ("--timeout", "1")), ("never_answers", ())],
    ids=["endless_sse", "never_answers"],
)
async def test_the_request_deadline_ends_a_request_that_is_never_answered(
    hostile: HostileServer, tool: str, flags: tuple[str, ...]
) -> None:
    """--timeout cannot end an answer that keeps sending progress; the deadline does, with one error."""
    async with resilient_proxy(hostile, "--request-deadline", "1.5", *flags) as proxy:
        await proxy.initialize()
        started = time.monotonic()
        error = error_of(await exchange(proxy, call(f"deadline-{tool}", tool)))
        elapsed = time.monotonic() - started
        assert error["message"].startswith(
            "no response within the request deadline of 1.5 s (--request-deadline): the proxy stopped waiting"
        ), error
        assert error["data"] == {"kind": "request_deadline", "retryable": False}
        if tool == "endless_sse":
            assert 1.5 <= elapsed < 10  # --timeout 1 alone never fires: the stream keeps delivering
        await assert_nothing_else(proxy)
        assert await proxy.close() == 0
    assert record_of(hostile, f"deadline-{tool}").client_closed


async def test_the_request_deadline_on_the_legacy_transport() -> None:
    with HostileServer(legacy=True) as server:
        async with resilient_proxy(server, "--transport", "sse", "--request-deadline", "1") as proxy:
            await proxy.initialize()
            error = error_of(await exchange(proxy, call("deadline-legacy", "endless_sse")))
            assert error["message"].startswith("no response within the request deadline of 1 s (--request-deadline)")
            # The one stream keeps carrying the server's notifications, which pass; no second answer comes.
            after = await exchange(proxy, call("after-legacy", "echo", {"message": "after"}))
            assert after["result"]["content"][0]["text"] == "after"
            assert await proxy.close() == 0


async def test_without_a_deadline_a_slow_answer_with_progress_is_not_cut(hostile: HostileServer) -> None:
    async with resilient_proxy(hostile, "--timeout", "0.5") as proxy:
        await proxy.initialize()
        await proxy.send(call("patient", "endless_sse"))
        ticks = 0
        while ticks < 40:  # 0.8 s of notifications, longer than --timeout: still going
            message = await proxy.receive()
            assert message.get("method") == "notifications/message", message
            ticks += 1
        await proxy.kill()


# --- item 6: exactly one answer, valid JSON ---------------------------------------------------------------------


async def test_a_json_batch_answering_one_id_twice_reaches_the_client_once(hostile: HostileServer) -> None:
    await answered_once(hostile, "streamable-http")


async def test_a_batch_event_answering_one_id_twice_reaches_the_client_once(legacy: HostileServer) -> None:
    await answered_once(legacy, "sse")


async def answered_once(server: HostileServer, transport: str) -> None:
    async with resilient_proxy(server, "--transport", transport) as proxy:
        await proxy.initialize()
        await proxy.send(call("dup-1", "duplicate_ids"))
        answer = strict_json(await proxy.receive_line())
        members = answer if isinstance(answer, list) else [answer]
        assert members == [{"jsonrpc": "2.0", "id": "dup-1", "result": {"n": 1}}]
        await assert_nothing_else(proxy)
        assert await proxy.close() == 0
    assert 'dropped a response for id="dup-1"' in proxy.stderr


@pytest.mark.parametrize("literal", ["1e400", "-1e400"])
async def test_a_non_finite_id_is_refused_with_a_null_id_in_valid_json(hostile: HostileServer, literal: str) -> None:
    async with resilient_proxy(hostile) as proxy:
        await proxy.initialize()
        await proxy.send(f'{{"jsonrpc":"2.0","id":{literal},"method":"ping"}}')
        assert strict_json(await proxy.receive_line()) == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32600, "message": "Invalid Request: JSON-RPC id must be a finite number"},
        }
        await assert_nothing_else(proxy)
        assert await proxy.close() == 0
    assert not [record for record in hostile.records if record.rpc_method == "ping" and record.rpc_id is None]


async def test_the_hostile_upstreams_leave_no_traceback(hostile: HostileServer) -> None:
    """One proxy through every misbehaviour in turn, then still serving, and never a traceback."""
    async with resilient_proxy(hostile, *CAP, "--request-deadline", "1") as proxy:
        await proxy.initialize()
        for index, tool in enumerate(("huge_json", "gzip_bomb", "huge_sse_line", "endless_sse", "never_answers")):
            await proxy.send(call(f"mix-{index}", tool))
        answers = {}
        while len(answers) < 5:
            message = await proxy.receive()
            if "id" in message:
                answers[message["id"]] = error_of(message)["data"]["kind"]
        assert sorted(answers.values()) == ["request_deadline"] * 2 + ["response_too_large"] * 3
        await assert_nothing_else(proxy)
        assert await proxy.close() == 0
    assert "Traceback" not in proxy.stderr

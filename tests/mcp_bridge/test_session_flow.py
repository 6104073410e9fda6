"""The session around the requests, in process: messages held back while initialize is in flight, ``--warm``
(a cached answer first, the real initialize behind it, re-run when it failed), the standalone stream (``--sse``),
and the ``auto`` transport staying with Streamable HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sigv4_proxy.mcp.standalone import StandaloneStream
from sigv4_proxy.mcp.transport import PostResult
from sigv4_proxy.mcp.warm import WarmCache

from .harness import INITIALIZED, URL, FakeServer, call, event, initialize, running_bridge


async def test_messages_wait_for_the_initialize_in_flight() -> None:
    server = FakeServer()
    server.hold_initialize = asyncio.Event()
    async with running_bridge(server) as proxy:
        proxy.stdin.send(initialize(1))
        proxy.stdin.send(INITIALIZED)
        proxy.stdin.send(call(2, "echo", {"message": "after"}))
        await asyncio.wait_for(server.initialize_held.wait(), 5)
        assert server.rpc() == [] and proxy.bridge.session.initializing  # the notification and the call wait
        server.hold_initialize.set()
        assert (await proxy.stdout.receive())["id"] == 1
        assert (await proxy.stdout.receive())["id"] == 2
        assert await proxy.finish() == 0
    assert [rpc for rpc, _ in server.rpc()] == ["initialize", "notifications/initialized", "tools/call echo"]
    assert {record.session for record in server.records[1:3]} == {"session-1"}  # sent with its session id


def cache_with_answer(tmp_path: Path) -> tuple[WarmCache, dict[str, Any]]:
    cache = WarmCache(tmp_path, URL)
    result = {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "cached", "version": "0"}}
    assert cache.save("2025-06-18", result) is not None
    return cache, result


async def test_warm_start_answers_from_the_cache_and_completes_the_real_initialize_behind_it(tmp_path: Path) -> None:
    cache, cached = cache_with_answer(tmp_path)
    server = FakeServer()
    server.hold_initialize = asyncio.Event()  # a cold start: the real initialize takes a while
    async with running_bridge(server, warm=True, warm_cache=cache) as proxy:
        answer = await proxy.request(initialize("warm"))
        assert answer == {"jsonrpc": "2.0", "id": "warm", "result": cached}  # before the server answered
        proxy.stdin.send(INITIALIZED)
        proxy.stdin.send(call(2, "echo", {"message": "after the real one"}))
        server.hold_initialize.set()
        assert (await proxy.stdout.receive())["id"] == 2
        assert await proxy.finish() == 0
    assert [rpc for rpc, _ in server.rpc()] == ["initialize", "notifications/initialized", "tools/call echo"]
    entry = cache.load("2025-06-18")
    assert entry is not None and b'"fake"' in entry.result  # refreshed with the server's own answer


async def test_warm_start_without_a_cached_answer_passes_the_real_one_on_and_caches_it(tmp_path: Path) -> None:
    cache = WarmCache(tmp_path, URL)
    async with running_bridge(warm=True, warm_cache=cache) as proxy:
        answer = await proxy.request(initialize(1))
        assert answer["result"]["serverInfo"]["name"] == "fake"
        assert await proxy.finish() == 0
    entry = cache.load("2025-06-18")
    assert entry is not None and b'"fake"' in entry.result


async def test_a_failed_real_initialize_behind_a_warm_start_is_rerun_by_the_next_request(tmp_path: Path) -> None:
    cache, _ = cache_with_answer(tmp_path)
    server = FakeServer()
    server.fail_next("initialize", 424)
    async with running_bridge(server, warm=True, warm_cache=cache, retries=0) as proxy:
        assert "result" in await proxy.request(initialize(1))  # the client is told it worked
        proxy.stdin.send(INITIALIZED)
        listed = await proxy.request({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert listed["result"]["tools"] == [{"name": "echo"}]
        assert await proxy.finish() == 0
    assert server.rpc() == [
        ("initialize", 424),
        ("initialize", 200),  # re-run before the next request
        ("notifications/initialized", 202),  # once: the client's own is not sent a second time
        ("tools/list", 200),
    ]
    assert not proxy.bridge.session.needs_initialize


async def test_the_standalone_stream_delivers_server_messages() -> None:
    server = FakeServer()
    server.standalone = asyncio.Queue()
    async with running_bridge(server, sse=True) as proxy:
        await proxy.initialize()
        await asyncio.wait_for(server.get_opened.wait(), 5)
        changed = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
        server.standalone.put_nowait(event(changed, "e1"))
        assert await proxy.stdout.receive() == changed
        assert await proxy.finish() == 0
    assert server.rpc("GET") == [("GET", 200)]


async def test_the_standalone_stream_reconnects_with_the_last_event_id() -> None:
    server = FakeServer()
    server.standalone = asyncio.Queue()
    async with running_bridge(server, sse=True) as proxy:
        await proxy.initialize()
        await asyncio.wait_for(server.get_opened.wait(), 5)
        server.get_opened.clear()
        server.standalone.put_nowait(event({"jsonrpc": "2.0", "method": "notifications/message"}, "e7"))
        await proxy.stdout.receive()
        server.standalone.put_nowait(None)  # the server closes the stream
        await asyncio.wait_for(server.get_opened.wait(), 5)  # ... and it is reopened
        assert await proxy.finish() == 0
    assert proxy.sleeps == [1.0]  # the default reconnection time (the server set none)
    assert proxy.bridge.transport.last_event_id == "e7"


async def test_no_standalone_stream_405_stops_quietly() -> None:
    server = FakeServer()  # (no standalone queue: GET answers 405)
    async with running_bridge(server, sse=True) as proxy:
        await proxy.initialize()
        assert (await proxy.request(call(2, "echo", {"message": "fine"})))["id"] == 2
        assert await proxy.finish() == 0
    assert server.rpc("GET") == [("GET", 405)] and proxy.sleeps == []


async def test_auto_transport_stays_with_streamable_http() -> None:
    async with running_bridge(transport="auto") as proxy:
        await proxy.initialize()
        assert proxy.bridge.transport.name == "streamable-http"
        assert await proxy.finish() == 0


class ScriptedTransport:
    """A fake transport for :class:`StandaloneStream` on its own: ``listen`` returns the scripted results."""

    name = "streamable-http"
    standalone_stream = True
    last_event_id: str | None = None

    def __init__(self, *results: PostResult, retry_ms: int | None = None) -> None:
        self.results = list(results)
        self.retry_ms = retry_ms
        self.listens = 0

    async def listen(self) -> PostResult:
        self.listens += 1
        return self.results.pop(0)


class Session:
    session_id = "s1"


async def run_stream(transport: ScriptedTransport) -> list[float]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def recover(diagnosis: Any, result: PostResult) -> None:
        raise AssertionError("nothing to recover")

    stream = StandaloneStream(
        transport,  # type: ignore[arg-type]
        Session(),  # type: ignore[arg-type]
        stopping=asyncio.Event(),
        signing_context=lambda: None,  # type: ignore[arg-type,return-value]
        recover_signing=recover,
        max_message_bytes=1 << 20,
        random=lambda: 0.0,
        sleep=sleep,
    )
    stream.start()
    assert stream._task is not None
    await asyncio.wait_for(stream._task, 5)
    return waits


async def test_the_standalone_stream_runs_without_a_bridge_and_paces_by_the_servers_retry() -> None:
    closed = PostResult(status=200, content_type="text/event-stream", delivered=1)
    transport = ScriptedTransport(closed, closed, PostResult(status=405), retry_ms=250)
    assert await run_stream(transport) == [0.25, 0.25]  # delivered each time: no backoff
    assert transport.listens == 3


async def test_the_standalone_stream_backs_off_while_it_keeps_failing() -> None:
    refused = PostResult(status=503)
    transport = ScriptedTransport(refused, refused, refused, PostResult(status=405))
    assert await run_stream(transport) == [1.0, 1.0, 2.0]  # equal jitter at 0: half of 2 s, half of 4 s

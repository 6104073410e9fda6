"""The legacy HTTP+SSE transport after the server forgot the session while the old event stream still looks open.

A restarted server answers the old endpoint 404 ("Could not find session") before the cut of its old stream
reaches the proxy. The re-initialize that follows must open a new stream and post to its endpoint; posting to
the dead endpoint failed the recovery with "establishing a new one failed: HTTP 404" (seen in CI).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx

from sigv4_proxy.mcp.jsonrpc import Envelope, peek
from sigv4_proxy.mcp.legacy import LegacySseTransport
from sigv4_proxy.mcp.session import SessionState
from sigv4_proxy.mcp.transport import UpstreamLink

URL = "http://127.0.0.1:9/sse"


class ForgetfulLegacyServer:
    """Each GET opens a stream for a new session; streams never end; `forget()` makes every known session 404."""

    def __init__(self) -> None:
        self.sessions: dict[str, asyncio.Queue[bytes]] = {}
        self.forgotten: set[str] = set()
        self.gets = 0
        self.posts: list[tuple[str, str]] = []  # (session, method)

    def forget(self) -> None:
        self.forgotten |= set(self.sessions)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.gets += 1
            session = f"s{self.gets}"
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            self.sessions[session] = queue
            await queue.put(f"event: endpoint\ndata: /messages/?session_id={session}\n\n".encode())
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Events(queue))
        session = request.url.params["session_id"]
        message = json.loads(request.content)
        self.posts.append((session, message["method"]))
        if session in self.forgotten:
            return httpx.Response(404, text="Could not find session")
        answer = {"jsonrpc": "2.0", "id": message["id"], "result": {"protocolVersion": "2024-11-05"}}
        await self.sessions[session].put(f"event: message\ndata: {json.dumps(answer)}\n\n".encode())
        return httpx.Response(202, text="Accepted")


class _Events(httpx.AsyncByteStream):
    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:  # the stream outlives its session, as a cut that has not arrived yet
            yield await self.queue.get()


def _request(message_id: int, method: str) -> Envelope:
    envelope = peek(json.dumps({"jsonrpc": "2.0", "id": message_id, "method": method, "params": {}}).encode())
    assert envelope is not None
    return envelope


async def test_a_forgotten_session_on_a_stream_still_open_is_re_established_on_a_new_stream() -> None:
    server = ForgetfulLegacyServer()
    delivered: list[bytes] = []

    async def deliver(data: bytes | bytearray, envelope: Envelope, request: Envelope | None) -> None:
        delivered.append(bytes(data))

    session = SessionState()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handle)) as client:
        transport = LegacySseTransport(UpstreamLink(client, URL, session, deliver), timeout=5)
        initialize = _request(1, "initialize")
        session.initialize_started(initialize)
        assert (await transport.post(initialize)).ok
        session.established()
        session.initialize_finished()

        server.forget()
        lost = await transport.post(_request(2, "tools/list"))
        assert lost.session_lost

        session.reinitialize_started()
        again = await transport.post(initialize)
        session.initialize_finished()
        assert again.ok, again
        assert server.gets == 2
        assert server.posts == [("s1", "initialize"), ("s1", "tools/list"), ("s2", "initialize")]
        await transport.terminate()

"""Raw-socket clients and a recording server for tests: bytes in, bytes out, every wait bounded.

Well-behaved clients (httpx, curl, a database driver) cannot send what these tests need — a request head
that never ends, conflicting framing headers, a protocol preface — and cannot tell "the server sent
nothing" from "the server closed". These helpers can. They are asyncio-based (a listener under test runs
in the test's event loop, so a blocking socket would deadlock it) and protocol-neutral: only
:func:`parse_http_response` and :func:`http_responder` know HTTP; the rest serves any TCP door (the
PostgreSQL door's tests included).

    async with await RawClient.open("127.0.0.1", port) as client:
        await client.send(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        response = await client.read_http_response(timeout=5)

    async with RecordingServer() as trap:        # records whether anything connected, and what it sent
        ...
        assert trap.connections == 0
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

__all__ = [
    "RawClient",
    "RawResponse",
    "RecordingServer",
    "exchange",
    "http_responder",
    "parse_http_response",
]

DEFAULT_TIMEOUT = 5.0
CHUNK = 64 * 1024


@dataclass
class RawResponse:
    """An HTTP/1.x response as it came off the wire."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    def json(self) -> Any:
        return json.loads(self.body)


def parse_http_response(data: bytes) -> RawResponse:
    """One response from `data` (its head, and a body framed by Content-Length or running to the end).

    Raises ValueError when `data` holds no complete response head.
    """
    head, separator, rest = data.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError(f"no complete HTTP response head in {data[:200]!r}")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    _version, status, *reason = status_line.split(" ", 2)
    headers = [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in header_lines)]
    response = RawResponse(int(status), reason[0] if reason else "", headers, rest, data)
    length = response.header("content-length")
    if length is not None and length.isdigit():
        response.body = rest[: int(length)]
    return response


class RawClient:
    """One TCP connection driven byte by byte. Every read takes a timeout; none waits forever."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> RawClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        return cls(reader, writer)

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = DEFAULT_TIMEOUT, size: int = CHUNK) -> bytes:
        """What arrives next (b"" when the peer closed); asyncio.TimeoutError when nothing came in time."""
        return await asyncio.wait_for(self.reader.read(size), timeout)

    async def recv_exactly(self, size: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(size), timeout)

    async def recv_until(self, marker: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Everything up to and including `marker`."""
        return await asyncio.wait_for(self.reader.readuntil(marker), timeout)

    async def recv_all(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Everything until the peer closes (a reset counts as a close); TimeoutError if it stays open."""

        async def drain() -> bytes:
            data = bytearray()
            with contextlib.suppress(ConnectionError):
                while chunk := await self.reader.read(CHUNK):
                    data += chunk
            return bytes(data)

        return await asyncio.wait_for(drain(), timeout)

    async def closed_within(self, timeout: float) -> bool:
        """True when the peer closes (or resets) the connection within `timeout`; data received is discarded."""
        try:
            await self.recv_all(timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def read_http_response(self, timeout: float = DEFAULT_TIMEOUT) -> RawResponse:
        """One HTTP response: the head, then a Content-Length body or everything until the peer closes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        response = parse_http_response(head)
        length = response.header("content-length")
        remaining = max(deadline - loop.time(), 0.001)
        if length is not None and length.isdigit():
            body = await self.recv_exactly(int(length), remaining)
        else:
            body = await self.recv_all(remaining)
        response.body, response.raw = body, head + body
        return response

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


async def exchange(host: str, port: int, data: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Send `data`, return everything received until the peer closes."""
    async with await RawClient.open(host, port, timeout) as client:
        await client.send(data)
        return await client.recv_all(timeout)


Responder = Callable[[bytes], "bytes | None"]


def http_responder(status: int = 200, body: bytes = b"ok", content_type: str = "text/plain") -> Responder:
    """A RecordingServer reply: once a whole HTTP request (head and Content-Length body) has arrived, this
    response, with ``Connection: close``."""
    reply = (
        f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode("latin-1") + body

    def respond(received: bytes) -> bytes | None:
        head, separator, rest = received.partition(b"\r\n\r\n")
        if not separator:
            return None
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        return reply if len(rest) >= length else None

    return respond


@dataclass
class RecordingServer:
    """A TCP server on 127.0.0.1 that records each connection and the bytes it received.

    `respond` sees everything received so far on a connection and returns the bytes to answer with (the
    connection is then closed), or None to keep reading. Without it the server answers nothing and holds
    every connection open — a target that hangs.
    """

    respond: Responder | None = None
    host: str = "127.0.0.1"
    connections: int = 0
    received: list[bytes] = field(default_factory=list)
    _server: asyncio.base_events.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> RecordingServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        index = len(self.received)
        self.received.append(b"")
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(CHUNK):
                self.received[index] += chunk
                answer = self.respond(self.received[index]) if self.respond is not None else None
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
                    break
        writer.close()

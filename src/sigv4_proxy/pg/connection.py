"""One asyncio Protocol for both ends of a relayed PostgreSQL connection (`emulate dsql`, `pg`): it buffers
while the handshake coroutine reads, then hands every chunk straight to the relay (no coroutine switch per chunk on
the hot path)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Sink = Callable[[bytes], None]


class Connection(asyncio.Protocol):
    """A transport's bytes, first read by a coroutine (`read`), then pushed to a sink (`attach`).

    Back-pressure: while this side's transport cannot keep up (`pause_writing`), the peer stops reading."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Connection | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._sink: Sink | None = None
        self._on_close: Callable[[], None] | None = None
        self._on_eof: Callable[[], bool] | None = None
        self.eof = False
        self.closed = False

    # -- asyncio.Protocol --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the Transport interface without subclassing asyncio.Transport
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink(data)
            return
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        if self._on_eof is not None:
            return self._on_eof()  # a relay that passes the half-close on keeps this side open for writing
        if self._on_close is not None:
            self._on_close()
        return False  # close the transport: the PostgreSQL protocol has no use for a half-open stream

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()
        if self._on_close is not None:
            self._on_close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.closed:
            self.peer.transport.resume_reading()

    # -- handshake phase -----------------------------------------------------------------------------------

    async def read(self) -> bytes:
        """Everything received so far (waiting for at least one byte); b"" once the peer has gone."""
        while not self._buffer and not (self.eof or self.closed):
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def unread(self, data: bytes) -> None:
        """Put bytes a handshake received but did not use back in front of the buffer."""
        self._buffer[:0] = data

    # -- relay phase ----------------------------------------------------------------------------------------

    def attach(self, sink: Sink, on_close: Callable[[], None], on_eof: Callable[[], bool] | None = None) -> None:
        """From now on, every chunk goes to `sink`; anything buffered goes first. ``on_eof`` (when given) hears
        the peer's half-close instead of ``on_close``; it returns whether to keep the transport open."""
        self._sink, self._on_close, self._on_eof = sink, on_close, on_eof
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            sink(data)
        if self.closed or (self.eof and (on_eof is None or not on_eof())):
            on_close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

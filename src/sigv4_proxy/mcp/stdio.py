"""The stdio side of the bridge: newline-delimited messages in on stdin, out on stdout.

* :class:`LineSplitter` (sans-IO) cuts a byte stream into lines without ever holding more than one line
  plus one read chunk, and turns a line longer than ``max_bytes`` into an :class:`Oversize` marker
  (keeping only its first bytes, so the error can name the request's id) instead of buffering it.
* :class:`StdinReader` feeds it from fd 0: a non-blocking pipe when stdin is a pipe, socket or terminal
  (the MCP client case), a reader thread for regular files; with backpressure either way.
* :class:`StdoutWriter` is the only writer of stdout. One lock serialises whole messages, so lines never
  interleave; large messages are written in slices so the write buffer never copies a whole message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
import threading
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["Line", "LineSplitter", "Oversize", "StdinReader", "StdoutWriter"]

READ_CHUNK = 256 * 1024
WRITE_SLICE = 1024 * 1024
OVERSIZE_PREFIX = 64 * 1024  # kept from an over-size line to find its id
_NEWLINE_TABLE = bytes.maketrans(b"\r\n", b"  ")


@dataclass(slots=True)
class Line:
    """One complete line, without its line break."""

    data: bytearray


@dataclass(slots=True)
class Oversize:
    """A line longer than the limit: only its first bytes were kept, the rest was discarded."""

    prefix: bytes
    size: int


class LineSplitter:
    """Cut a byte stream into lines of at most ``max_bytes`` (line breaks: LF or CRLF)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._scan_from = 0
        self._discarding: Oversize | None = None

    def feed(self, chunk: bytes | bytearray) -> list[Line | Oversize]:
        out: list[Line | Oversize] = []
        offset, size = 0, len(chunk)
        while offset < size:
            if self._discarding is not None:
                newline = chunk.find(b"\n", offset)
                if newline < 0:
                    self._discarding.size += size - offset
                    return out
                self._discarding.size += newline - offset
                out.append(self._discarding)
                self._discarding = None
                offset = newline + 1
                continue
            self._buffer += chunk if offset == 0 else memoryview(chunk)[offset:]
            offset = size
            self._split(out)
        return out

    def close(self) -> list[Line | Oversize]:
        """End of input: a last line without a line break still counts."""
        out: list[Line | Oversize] = []
        if self._discarding is not None:
            out.append(self._discarding)
            self._discarding = None
        elif self._buffer:
            out.append(Line(_strip_cr(self._buffer)))
            self._buffer = bytearray()
        return out

    def _split(self, out: list[Line | Oversize]) -> None:
        while True:
            newline = self._buffer.find(b"\n", self._scan_from)
            if newline < 0:
                self._scan_from = len(self._buffer)
                if len(self._buffer) > self.max_bytes:
                    self._discarding = Oversize(bytes(self._buffer[:OVERSIZE_PREFIX]), len(self._buffer))
                    self._buffer = bytearray()
                    self._scan_from = 0
                return
            if newline > self.max_bytes:
                rest = self._buffer[newline + 1 :]
                out.append(Oversize(bytes(self._buffer[:OVERSIZE_PREFIX]), newline))
            else:
                # Zero-copy: the buffer becomes the line; only what follows it is copied.
                rest = self._buffer[newline + 1 :]
                line = self._buffer
                del line[newline:]
                out.append(Line(_strip_cr(line)))
            self._buffer = rest
            self._scan_from = 0
            if self._discarding is not None:
                return


def _pollable(mode: int, stream: BinaryIO) -> bool:
    """Pipes, sockets and terminals work with the event loop; files and /dev/null do not (epoll: EPERM)."""
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return True
    try:
        return stat.S_ISCHR(mode) and os.isatty(stream.fileno())
    except (OSError, ValueError):
        return False


def _strip_cr(line: bytearray) -> bytearray:
    if line.endswith(b"\r"):
        del line[-1:]
    return line


class StdinReader:
    """Async iterator over stdin's lines (:class:`Line` / :class:`Oversize`), ending at EOF."""

    def __init__(self, max_bytes: int, stream: BinaryIO | None = None) -> None:
        self._splitter = LineSplitter(max_bytes)
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._pending: list[Line | Oversize] = []
        self._reader: asyncio.StreamReader | None = None
        self._thread_queue: asyncio.Queue[bytes] | None = None
        self._eof = False
        self._transport: asyncio.BaseTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            mode = os.fstat(self._stream.fileno()).st_mode
        except (OSError, ValueError):
            self._eof = True
            return
        if _pollable(mode, self._stream):
            reader = asyncio.StreamReader(limit=READ_CHUNK * 4)
            try:
                self._transport, _ = await loop.connect_read_pipe(
                    lambda: asyncio.StreamReaderProtocol(reader), self._stream
                )
                self._reader = reader
                return
            except (OSError, ValueError):
                pass
        # A regular file (or anything else): read it in a thread, at most a few chunks ahead.
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
        self._thread_queue = queue
        fd = self._stream.fileno()

        def pump() -> None:
            while True:
                try:
                    chunk = os.read(fd, READ_CHUNK)
                except OSError:
                    chunk = b""
                try:
                    asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
                except (RuntimeError, asyncio.CancelledError, ConnectionError):
                    return
                if not chunk:
                    return

        threading.Thread(target=pump, name="sigv4-proxy-stdin", daemon=True).start()

    async def _read_chunk(self) -> bytes:
        if self._reader is not None:
            return await self._reader.read(READ_CHUNK)
        if self._thread_queue is not None:
            return await self._thread_queue.get()
        return b""

    def __aiter__(self) -> StdinReader:
        return self

    async def __anext__(self) -> Line | Oversize:
        while not self._pending:
            if self._eof:
                raise StopAsyncIteration
            chunk = await self._read_chunk()
            if chunk:
                self._pending.extend(self._splitter.feed(chunk))
            else:
                self._eof = True
                self._pending.extend(self._splitter.close())
        return self._pending.pop(0)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class StdoutWriter:
    """The single writer of stdout: ``await write_message(data)`` writes ``data`` + LF, atomically."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._lock = asyncio.Lock()
        self._writer: asyncio.StreamWriter | None = None
        self._closed = False
        self.messages_written = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            mode = os.fstat(self._stream.fileno()).st_mode
        except (OSError, ValueError):
            return
        if _pollable(mode, self._stream):
            try:
                transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, self._stream)
            except (OSError, ValueError):
                return
            self._writer = asyncio.StreamWriter(transport, protocol, None, loop)

    @property
    def closed(self) -> bool:
        return self._closed

    async def write_message(self, data: bytes | bytearray) -> bool:
        """Write one message as one line. Returns False when stdout is gone (the client went away)."""
        if b"\n" in data or b"\r" in data:
            # A line break can only be whitespace between JSON tokens (inside strings it must be escaped),
            # so replacing it with a space keeps the message identical in meaning and makes it one line.
            data = data.translate(_NEWLINE_TABLE)
        async with self._lock:
            if self._closed:
                return False
            try:
                await self._write(data)
            except (BrokenPipeError, ConnectionResetError, OSError, RuntimeError):
                self._closed = True
                return False
            self.messages_written += 1
            return True

    async def _write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        writer = self._writer
        if writer is None:
            fd = self._stream.fileno()
            for start in range(0, len(view), WRITE_SLICE):
                _write_all(fd, view[start : start + WRITE_SLICE])
            _write_all(fd, b"\n")
            return
        if writer.transport.is_closing():
            raise BrokenPipeError("stdout is closed")
        if len(view) < 65536:
            writer.write(bytes(view) + b"\n")  # one small copy, one system call
        else:
            for start in range(0, len(view), WRITE_SLICE):
                writer.write(view[start : start + WRITE_SLICE])
                await writer.drain()
            writer.write(b"\n")
        await writer.drain()

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            if self._writer is not None:
                with contextlib.suppress(Exception):
                    await self._writer.drain()
            else:
                with contextlib.suppress(Exception):
                    self._stream.flush()


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]

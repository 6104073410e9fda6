"""A hostile upstream for tests: a real HTTP/1.1 server on 127.0.0.1 that misbehaves on request.

It answers the way an upstream can hurt a client that reads its answers: a body far too large, a gzip bomb,
an event stream that never brings the response, an endless line, a batch that answers one id twice, a
request never answered. It speaks just enough HTTP/1.1 (one request per connection, ``Connection: close``),
checks nothing (not even signatures), runs in threads (so sync and async tests can both use it), and records
for every request how many bytes it managed to send and whether the client hung up first: the proof that a
client stopped reading.

    from tests.support.hostile import HostileServer

    with HostileServer() as server:                     # http://127.0.0.1:<port>/mcp
        ...  # point the client at server.url (server.env() configures sigv4-proxy)
        record = server.wait_for(lambda r: r.mode == "huge_json" and r.finished)
        assert record.client_closed and not record.completed

What each request gets (the first that applies):

* a mode named by the request path's last segment: ``server.url_for("gzip_bomb")`` is ``.../gzip_bomb``;
* for a JSON-RPC ``tools/call``, the mode named by the tool, so one MCP session can mix hostile calls with
  normal ones: ``{"method": "tools/call", "params": {"name": "huge_json"}}``;
* ``202 Accepted`` for a JSON-RPC notification or response (there is nothing to answer);
* ``server.mode`` (``"normal"`` unless given; it may be changed at any time).

The modes (``size`` is the payload in bytes, None for endless; ``interval`` the pause between events):

* ``normal``: a JSON-RPC answer. ``initialize`` gets a result and an ``Mcp-Session-Id``, ``tools/call`` of
  ``echo`` returns ``arguments.message`` as text, ``tools/list`` lists ``echo`` and the modes, anything else
  gets ``{}``.
* ``huge_json``: 200 ``application/json``, one response whose text is ``size`` bytes.
* ``gzip_bomb``: the same with ``Content-Encoding: gzip``, about 1000 times smaller on the wire.
* ``endless_sse``: 200 ``text/event-stream``, a ``notifications/message`` every ``interval``, never the response.
* ``huge_sse_line``: 200 ``text/event-stream``, the response in one ``data:`` line of ``size`` bytes.
* ``duplicate_ids``: 200 ``application/json``, a batch answering the request's id twice (``"n": 1`` and 2).
* ``never_answers``: reads the request and never answers, until the client hangs up or the server stops.

A GET without a mode in its path is the standalone event stream: 405 unless ``get_mode`` is set, and then a
stream that stays open and carries notifications: ``huge_json`` / ``huge_sse_line`` one of ``size`` bytes
(``gzip_bomb``: the same, gzip-encoded), ``endless_sse`` endless ones, ``normal`` one
``notifications/tools/list_changed`` (``never_answers`` never answers). DELETE gets 200.

``legacy=True`` speaks the 2024-11-05 HTTP+SSE transport instead: a GET opens the event stream (its first event
names ``/messages/?session_id=...``), a POST there gets 202 and its answer, normal or hostile, chosen as above,
arrives on that stream (``endless_sse`` starts notifications on it, interleaved with later answers; the bytes
count on the GET's record, whose mode is ``stream``). ``gzip_streams=True`` gzip-encodes every event stream,
which turns a huge event into a gzip bomb as well.
"""

from __future__ import annotations

import contextlib
import json
import queue
import select
import socket
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.waiting import wait_until_sync

__all__ = ["MODES", "HostileServer", "Record"]

MODES = ("normal", "huge_json", "gzip_bomb", "endless_sse", "huge_sse_line", "duplicate_ids", "never_answers")
STREAM = "stream"  # the mode recorded for a legacy event stream (GET)

DEFAULT_SIZE = 64 * 1024 * 1024
PLAIN_CHUNK = 64 * 1024
GZIP_CHUNK = 1024 * 1024  # zlib works in bigger bites: a bomb is produced at a few hundred MB/s
MAX_HEAD = 64 * 1024
POLL_SECONDS = 0.05  # how often blocked loops look at the stop flag


@dataclass
class Record:
    """One HTTP request and what the server managed to do about it."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names
    body: bytes
    mode: str
    rpc_method: str | None = None
    rpc_id: Any = None
    bytes_sent: int = 0  # on the wire (compressed, when it was)
    completed: bool = False  # the whole response went out
    client_closed: bool = False  # the client hung up (or reset) before the server was done
    finished: bool = False  # the server is done with this request


@dataclass
class _LegacyStream:
    """A legacy session: its event stream's connection and what is waiting to be sent on it."""

    record: Record
    outbox: queue.Queue[Iterable[bytes]] = field(default_factory=queue.Queue)
    ticking: bool = False  # an endless_sse request is "running": send notifications between answers


class _Encoder:
    """Identity or gzip (flushed at the end of every event, so each one arrives at once)."""

    def __init__(self, gzip: bool) -> None:
        self._zlib = zlib.compressobj(9, zlib.DEFLATED, 31) if gzip else None

    @property
    def chunk(self) -> int:
        return GZIP_CHUNK if self._zlib else PLAIN_CHUNK

    def encode(self, data: bytes, *, flush: bool = False) -> bytes:
        if self._zlib is None:
            return data
        out = self._zlib.compress(data)
        return out + self._zlib.flush(zlib.Z_SYNC_FLUSH) if flush else out

    def finish(self) -> bytes:
        return self._zlib.flush() if self._zlib is not None else b""


class HostileServer:
    """See the module docstring. ``with HostileServer(...) as server:`` starts and stops it."""

    def __init__(
        self,
        mode: str = "normal",
        *,
        size: int | None = DEFAULT_SIZE,
        interval: float = 0.02,
        legacy: bool = False,
        gzip_streams: bool = False,
        get_mode: str | None = None,
        region: str = "us-east-1",
        service: str = "execute-api",
    ) -> None:
        for name in (mode, get_mode or "normal"):
            if name not in MODES:
                raise ValueError(f"unknown mode {name!r}; modes: {', '.join(MODES)}")
        self.mode = mode
        self.size = size
        self.interval = interval
        self.legacy = legacy
        self.gzip_streams = gzip_streams
        self.get_mode = get_mode
        self.region = region
        self.service = service
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._records: list[Record] = []
        self._streams: dict[str, _LegacyStream] = {}
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the public side -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The endpoint to point a client at (``/sse`` for the legacy transport, else ``/mcp``)."""
        return f"http://127.0.0.1:{self.port}/{'sse' if self.legacy else 'mcp'}"

    def url_for(self, mode: str) -> str:
        """A URL whose every request gets ``mode``, whatever it carries."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        return f"http://127.0.0.1:{self.port}/{mode}"

    def env(self, credentials: Any = None) -> dict[str, str]:
        """Environment for ``sigv4-proxy`` (target, region, service, dummy keys): nothing here checks them."""
        return {
            "MCP_TARGET_URL": self.url,
            "AWS_REGION": self.region,
            "AWS_SERVICE_NAME": self.service,
            "AWS_ACCESS_KEY_ID": getattr(credentials, "access_key_id", "AKIDHOSTILEEXAMPLE"),
            "AWS_SECRET_ACCESS_KEY": getattr(credentials, "secret_access_key", "hostile-secret"),
        }

    @property
    def records(self) -> list[Record]:
        """Every request so far, oldest first (a copy; the records themselves keep updating)."""
        with self._lock:
            return list(self._records)

    def wait_for(self, predicate: Callable[[Record], bool], timeout: float = 15.0) -> Record:
        """The first record that satisfies ``predicate``, polling until ``timeout`` (then AssertionError)."""

        def first() -> Record | None:
            return next((record for record in self.records if predicate(record)), None)

        try:
            wait_until_sync(lambda: first() is not None, timeout, what="a matching request")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; seen: {self.records}") from None
        found = first()  # records are only ever added: the match is still there
        assert found is not None
        return found

    def start(self) -> HostileServer:
        self._spawn(self._accept, "hostile-accept")
        return self

    def stop(self) -> None:
        """Stop serving and hang up on every connection (endless answers end here)."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- connections -----------------------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        self._listener.settimeout(POLL_SECONDS)  # closing a listening socket does not wake accept() on Linux
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(None)
            with self._lock:
                self._connections.add(connection)
            self._spawn(self._serve, "hostile-connection", connection)

    def _serve(self, connection: socket.socket) -> None:
        record: Record | None = None
        try:
            request = _read_request(connection)
            if request is None:
                return
            record = self._record(*request)
            self._respond(connection, record)
        except OSError:
            if record is not None:
                record.client_closed = True
        finally:
            if record is not None:
                record.finished = True
            with self._lock:
                self._connections.discard(connection)
            with contextlib.suppress(OSError):
                connection.close()

    def _record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Record:
        record = Record(method, path, headers, body, mode=self.mode)
        message = _json_object(body)
        if message is not None:
            record.rpc_method = message.get("method") if isinstance(message.get("method"), str) else None
            record.rpc_id = message.get("id")
        record.mode = self._mode_for(record, message)
        with self._lock:
            self._records.append(record)
        return record

    def _mode_for(self, record: Record, message: dict[str, Any] | None) -> str:
        path_mode = _path_mode(record.path)
        if path_mode is not None:
            return path_mode
        if record.method == "GET":
            return STREAM if self.legacy else (self.get_mode or "none")
        if record.method != "POST":
            return "normal"
        if message is not None:
            params = message.get("params")
            tool = params.get("name") if isinstance(params, dict) and record.rpc_method == "tools/call" else None
            if tool in MODES:
                return str(tool)
            if "id" not in message or "method" not in message:
                return "accepted"  # a notification or a response: nothing to answer
        return self.mode

    # -- answers ---------------------------------------------------------------------------------------------

    def _respond(self, connection: socket.socket, record: Record) -> None:
        if record.method == "DELETE":
            record.completed = self._send_all(connection, record, _head(200, [("Content-Length", "0")]))
        elif record.mode == "accepted":
            record.completed = self._send_all(connection, record, _head(202, [("Content-Length", "0")]))
        elif record.mode == "none":
            head = _head(405, [("Allow", "POST, DELETE"), ("Content-Length", "0")])
            record.completed = self._send_all(connection, record, head)
        elif record.mode == STREAM:
            self._legacy_stream(connection, record)
        elif self.legacy and record.method == "POST":
            self._legacy_post(connection, record)
        else:  # a GET that names no mode is the standalone stream: its messages are notifications
            self._answer(connection, record, notify=record.method == "GET" and _path_mode(record.path) is None)

    def _answer(self, connection: socket.socket, record: Record, *, notify: bool) -> None:
        """The answer of ``record.mode`` on this connection (``notify``: as notifications, for a GET stream)."""
        mode, size = record.mode, self.size
        if mode == "never_answers":
            self._wait_for_hangup(connection, record)
            return
        if mode in ("endless_sse", "huge_sse_line") or (notify and mode in ("normal", "gzip_bomb", "huge_json")):
            self._event_stream(connection, record, notify=notify)
            return
        if mode == "gzip_bomb":
            encoder = _Encoder(gzip=True)
            head = _head(200, [("Content-Type", "application/json"), ("Content-Encoding", "gzip")])
            parts = _encoded(_huge_message(_answer_prefix(record.rpc_id), size, encoder.chunk), encoder)
        elif mode == "huge_json":
            prefix = _answer_prefix(record.rpc_id)
            length = [("Content-Length", str(len(prefix) + size + len(_ANSWER_SUFFIX)))] if size is not None else []
            head = _head(200, [("Content-Type", "application/json"), *length])
            parts = _huge_message(prefix, size, PLAIN_CHUNK)
        else:
            body = _duplicates(record.rpc_id) if mode == "duplicate_ids" else _normal_answer(record)
            extra = [("Mcp-Session-Id", "hostile-session")] if record.rpc_method == "initialize" else []
            head = _head(200, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra])
            parts = iter([body])
        if self._send_all(connection, record, head) and self._send_each(connection, record, parts):
            record.completed = True

    def _event_stream(self, connection: socket.socket, record: Record, *, notify: bool) -> None:
        gzip = self.gzip_streams or record.mode == "gzip_bomb"
        encoder = _Encoder(gzip)
        if not self._send_all(connection, record, _head(200, _stream_headers(gzip))):
            return
        if record.mode == "endless_sse":
            self._tick_until_hangup(connection, record, encoder)
            return
        if record.mode == "normal":
            event = _event(b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}')
            parts: Iterator[bytes] = iter([encoder.encode(event, flush=True)])
        else:
            prefix = _NOTIFICATION_PREFIX if notify else _answer_prefix(record.rpc_id)
            suffix = _NOTIFICATION_SUFFIX if notify else _ANSWER_SUFFIX
            message = _huge_message(prefix, self.size, encoder.chunk, suffix)
            parts = _encoded(_framed(message), encoder, flush=True)
        if not self._send_each(connection, record, parts):
            return
        if notify:  # a standalone stream stays open, as a server's would
            self._wait_for_hangup(connection, record)
            return
        record.completed = self._send_all(connection, record, encoder.finish())

    def _tick_until_hangup(self, connection: socket.socket, record: Record, encoder: _Encoder) -> None:
        count = 0
        while not self._stopping.is_set() and not record.client_closed:
            count += 1
            if not self._send_all(connection, record, encoder.encode(_tick(count), flush=True)):
                return
            if _hung_up(connection, self.interval):
                record.client_closed = True

    # -- the legacy HTTP+SSE transport -----------------------------------------------------------------------

    def _legacy_stream(self, connection: socket.socket, record: Record) -> None:
        session = uuid.uuid4().hex
        stream = _LegacyStream(record)
        with self._lock:
            self._streams[session] = stream
        encoder = _Encoder(self.gzip_streams)
        endpoint = encoder.encode(f"event: endpoint\ndata: /messages/?session_id={session}\n\n".encode(), flush=True)
        try:
            if not self._send_all(connection, record, _head(200, _stream_headers(self.gzip_streams)) + endpoint):
                return
            count = 0
            while not self._stopping.is_set() and not record.client_closed:
                try:
                    event = stream.outbox.get(timeout=self.interval)
                except queue.Empty:
                    if _hung_up(connection, 0):
                        record.client_closed = True
                    elif stream.ticking:
                        count += 1
                        self._send_all(connection, record, encoder.encode(_tick(count), flush=True))
                    continue
                self._send_each(connection, record, _encoded(event, encoder, flush=True))
        finally:
            with self._lock:
                self._streams.pop(session, None)

    def _legacy_post(self, connection: socket.socket, record: Record) -> None:
        session = (parse_qs(urlsplit(record.path).query).get("session_id") or [""])[0]
        with self._lock:
            stream = self._streams.get(session)
        if stream is None:
            body = b"Could not find session"
            head = _head(404, [("Content-Length", str(len(body)))])
            record.completed = self._send_all(connection, record, head + body)
            return
        if record.mode == "never_answers":
            self._wait_for_hangup(connection, record)
            return
        record.completed = self._send_all(connection, record, _head(202, [("Content-Length", "8")]) + b"Accepted")
        if record.mode == "endless_sse":
            stream.ticking = True
        elif record.mode in ("huge_json", "gzip_bomb", "huge_sse_line"):
            stream.outbox.put(_framed(_huge_message(_answer_prefix(record.rpc_id), self.size, PLAIN_CHUNK)))
        elif record.mode == "duplicate_ids":
            stream.outbox.put([_event(_duplicates(record.rpc_id))])
        elif record.mode == "normal":
            stream.outbox.put([_event(_normal_answer(record))])

    # -- sending -----------------------------------------------------------------------------------------------

    def _send_all(self, connection: socket.socket, record: Record, data: bytes) -> bool:
        """Send ``data``, counting what went out; False once the client hung up or the server stops."""
        view = memoryview(data)
        while view:
            if self._stopping.is_set():
                return False
            try:
                _, writable, _ = select.select([], [connection], [], POLL_SECONDS)
                if not writable:
                    continue
                sent = connection.send(view)
            except OSError:  # EPIPE, ECONNRESET: the client closed the connection
                record.client_closed = True
                return False
            view = view[sent:]
            record.bytes_sent += sent
        return True

    def _send_each(self, connection: socket.socket, record: Record, parts: Iterable[bytes]) -> bool:
        return all(self._send_all(connection, record, part) for part in parts)

    def _wait_for_hangup(self, connection: socket.socket, record: Record) -> None:
        while not self._stopping.is_set():
            if _hung_up(connection, POLL_SECONDS):
                record.client_closed = True
                return


# --- HTTP ---------------------------------------------------------------------------------------------------


def _read_request(connection: socket.socket) -> tuple[str, str, dict[str, str], bytes] | None:
    """(method, path, headers, body) of the next request, or None when the client sent none."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk or len(data) > MAX_HEAD:
            return None
        data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return method, path, headers, _read_chunked(connection, rest)
    length = int(headers.get("content-length") or 0)
    body = bytearray(rest)
    while len(body) < length:
        chunk = connection.recv(min(65536, length - len(body)))
        if not chunk:
            break
        body += chunk
    return method, path, headers, bytes(body[:length])


def _read_chunked(connection: socket.socket, data: bytes) -> bytes:
    buffer, body = bytearray(data), bytearray()
    while True:
        while b"\r\n" not in buffer:
            buffer += connection.recv(65536) or b"0\r\n\r\n"
        size_line, _, rest = bytes(buffer).partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        buffer = bytearray(rest)
        while len(buffer) < size + 2:
            buffer += connection.recv(65536) or b"\r\n"
        body += buffer[:size]
        del buffer[: size + 2]
        if size == 0:
            return bytes(body)


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    reason = {200: "OK", 202: "Accepted", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "Status")
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{name}: {value}" for name, value in headers), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _stream_headers(gzip: bool) -> list[tuple[str, str]]:
    headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
    return [*headers, ("Content-Encoding", "gzip")] if gzip else headers


def _path_mode(path: str) -> str | None:
    segment = urlsplit(path).path.rstrip("/").rpartition("/")[2]
    return segment if segment in MODES else None


def _hung_up(connection: socket.socket, wait: float) -> bool:
    """Whether the client closed its end (it sends nothing more after its request, so readable means EOF)."""
    try:
        readable, _, _ = select.select([connection], [], [], wait)
        return bool(readable) and not connection.recv(65536)
    except OSError:
        return True


# --- messages -----------------------------------------------------------------------------------------------

_ANSWER_SUFFIX = b'"}]}}'
_NOTIFICATION_PREFIX = b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"'
_NOTIFICATION_SUFFIX = b'"}}'


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(body)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _id_json(message_id: Any) -> bytes:
    return json.dumps(message_id).encode()


def _answer_prefix(message_id: Any) -> bytes:
    return b'{"jsonrpc":"2.0","id":' + _id_json(message_id) + b',"result":{"content":[{"type":"text","text":"'


def _huge_message(prefix: bytes, size: int | None, chunk: int, suffix: bytes = _ANSWER_SUFFIX) -> Iterator[bytes]:
    """``prefix``, ``size`` bytes of ``x`` (forever when None), ``suffix``: produced as it is sent."""
    yield prefix
    block = b"x" * chunk
    remaining = size
    while remaining is None or remaining > 0:
        step = chunk if remaining is None else min(chunk, remaining)
        yield block[:step]
        if remaining is not None:
            remaining -= step
    yield suffix


def _framed(message: Iterable[bytes]) -> Iterator[bytes]:
    """One event whose data is ``message`` (which must hold no line break)."""
    yield b"event: message\ndata: "
    yield from message
    yield b"\n\n"


def _encoded(parts: Iterable[bytes], encoder: _Encoder, *, flush: bool = False) -> Iterator[bytes]:
    """``parts`` through ``encoder``; ``flush``: end with a sync flush (an event), else finish the body."""
    for part in parts:
        encoded = encoder.encode(part)
        if encoded:
            yield encoded
    yield encoder.encode(b"", flush=True) if flush else encoder.finish()


def _event(message: bytes) -> bytes:
    return b"event: message\ndata: " + message + b"\n\n"


def _tick(count: int) -> bytes:
    return _event(
        b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"tick %d"}}' % count
    )


def _duplicates(message_id: Any) -> bytes:
    first = b'{"jsonrpc":"2.0","id":' + _id_json(message_id) + b',"result":{"n":1}}'
    second = b'{"jsonrpc":"2.0","id":' + _id_json(message_id) + b',"result":{"n":2}}'
    return b"[" + first + b"," + second + b"]"


def _normal_answer(record: Record) -> bytes:
    message = _json_object(record.body) or {}
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    result: dict[str, Any] = {}
    if record.rpc_method == "initialize":
        version = params.get("protocolVersion") if isinstance(params.get("protocolVersion"), str) else "2025-06-18"
        result = {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "hostile", "version": "1"},
        }
    elif record.rpc_method == "tools/list":
        result = {"tools": [{"name": name, "inputSchema": {"type": "object"}} for name in ("echo", *MODES[1:])]}
    elif record.rpc_method == "tools/call":
        arguments = params.get("arguments") if isinstance(params.get("arguments"), dict) else {}
        text = str(arguments.get("message", "ok"))
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    return json.dumps({"jsonrpc": "2.0", "id": record.rpc_id, "result": result}, separators=(",", ":")).encode()

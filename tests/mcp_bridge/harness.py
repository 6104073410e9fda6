"""An in-memory harness for the stdio bridge: the real :class:`~sigv4_proxy.mcp.bridge.Bridge`, transports and
signer, with fake stdio ends and a fake MCP server behind ``httpx.MockTransport``.

* :class:`FakeStdin` / :class:`FakeStdout` stand in for the bridge's stdin reader and stdout writer (the seams
  ``runner.py`` fills with :mod:`~sigv4_proxy.mcp.stdio`): lines go in through a queue, messages come out
  through another one, so a test awaits what it expects instead of sleeping.
* :class:`FakeServer` is a small Streamable HTTP MCP server that verifies every request's SigV4 signature with
  :func:`sigv4_proxy.verify` (a request signed wrongly is refused as API Gateway would, never accepted), keeps
  sessions, serves a few tools (``echo``; ``block``, which waits for the test to release it; ``progress``)
  and takes scripted faults (:meth:`FakeServer.fail_next`). Its clock can be set off the real one.
* :func:`running_bridge` wires them together and runs the bridge until the test is done with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx

from sigv4_proxy.auth import SigV4Auth
from sigv4_proxy.clock import SkewedClock
from sigv4_proxy.config import ProxyConfig
from sigv4_proxy.diagnose import SigningContext
from sigv4_proxy.mcp.bridge import Bridge
from sigv4_proxy.mcp.stdio import Line, Oversize
from sigv4_proxy.signing.model import Credentials
from sigv4_proxy.signing.verify import verify
from tests.mcp_proxy.harness import call as call  # one tools/call builder for both rings (re-exported)

URL = "https://mcp.example.test/mcp"
REGION = "us-east-1"
SERVICE = "execute-api"
PROTOCOL = "2025-06-18"
FIRST = Credentials("ASIAFIRSTKEYEXAMPLE1", "first-secret-" + "x" * 27, "first-token")
SECOND = Credentials("ASIASECONDKEYEXAMPL2", "second-secret-" + "y" * 26, "second-token")
WAIT = 5.0  # how long a test waits for something that happens at once (a hang fails instead of blocking)


def initialize(message_id: Any = 1, version: str = PROTOCOL) -> dict[str, Any]:
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    return {"jsonrpc": "2.0", "id": message_id, "method": "initialize", "params": params}


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


# -- stdio ------------------------------------------------------------------------------------------------------


class FakeStdin:
    """The bridge's stdin: lines a test feeds, then end of input."""

    def __init__(self) -> None:
        self._lines: asyncio.Queue[Line | Oversize | None] = asyncio.Queue()
        self.closed = False

    def send(self, message: Any) -> None:
        data = message if isinstance(message, (bytes, str)) else json.dumps(message)
        self._lines.put_nowait(Line(bytearray(data.encode() if isinstance(data, str) else data)))

    def send_oversize(self, prefix: bytes, size: int) -> None:
        self._lines.put_nowait(Oversize(prefix, size))

    def end(self) -> None:
        self._lines.put_nowait(None)

    async def start(self) -> None:
        pass

    def __aiter__(self) -> FakeStdin:
        return self

    async def __anext__(self) -> Line | Oversize:
        item = await self._lines.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        self.closed = True


class FakeStdout:
    """The bridge's stdout: every message it writes, decoded, in order."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False
        self.gone = False  # set by a test: the client went away
        self.refused = asyncio.Event()  # a write found it gone

    async def start(self) -> None:
        pass

    async def write_message(self, data: bytes | bytearray) -> bool:
        if self.gone:
            self.closed = True
            self.refused.set()
            return False
        assert b"\n" not in data
        message = json.loads(bytes(data))
        self.messages.append(message)
        self._queue.put_nowait(message)
        return True

    async def receive(self, timeout: float = WAIT) -> Any:
        return await asyncio.wait_for(self._queue.get(), timeout)

    def nothing_more(self) -> bool:
        return self._queue.empty()

    async def close(self) -> None:
        self.closed = True


# -- credentials ------------------------------------------------------------------------------------------------


class FakeCredentials:
    """A credential source whose ``force_refresh`` moves on to the next credentials (a refresh that fails raises)."""

    def __init__(self, *credentials: Credentials, method: str = "sso", refresh_error: Exception | None = None):
        self._all = list(credentials or (FIRST, SECOND))
        self.current = self._all[0]
        self.method = method
        self.profile: str | None = "dev"
        self.refresh_error = refresh_error
        self.refreshes = 0

    def get(self, now: datetime | None = None) -> Credentials:
        return self.current

    def cached(self, now: datetime | None = None) -> Credentials | None:
        return self.current

    def force_refresh(self) -> Credentials:
        self.refreshes += 1
        if self.refresh_error is not None:
            raise self.refresh_error
        self.current = self._all[min(self.refreshes, len(self._all) - 1)]
        return self.current


# -- the server -------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """A scripted answer for the next request(s) whose JSON-RPC method (or tool) matches."""

    match: str
    times: int
    status: int = 0
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    error: Exception | None = None  # raised instead of answering (a broken connection)
    forget_session: bool = False  # answer 404: the server forgot the session


@dataclass
class Record:
    """One request the server received, and how it answered."""

    method: str
    rpc: str
    status: int
    session: str | None = None


class FakeServer:
    """A verifying Streamable HTTP MCP server, in memory (see the module docstring)."""

    def __init__(self, credentials: list[Credentials] | None = None, *, json_response: bool = True) -> None:
        self.credentials = {c.access_key_id: c for c in credentials or (FIRST, SECOND)}
        self.expired: set[str] = set()  # access keys the server calls expired
        self.json_response = json_response
        self.offset = timedelta(0)  # the server's clock minus the real one
        self.faults: list[Fault] = []
        self.records: list[Record] = []
        self.sessions: set[str] = set()
        self._session_ids = itertools.count(1)
        self.executions: dict[str, int] = {}  # tools/call executions per request id
        self.gates: dict[str, asyncio.Event] = {}  # `block` waits for gates[its message's "gate" argument]
        self.started: dict[str, asyncio.Event] = {}  # set when a `block` call starts
        self.standalone: asyncio.Queue[bytes | None] | None = None  # GET stream events; None: 405
        self.get_opened = asyncio.Event()
        self.hold_initialize: asyncio.Event | None = None  # when set: initialize answers once it is set
        self.initialize_held = asyncio.Event()  # set when an initialize waits on hold_initialize
        self._arrivals: dict[str, asyncio.Event] = {}

    # -- scripting ---------------------------------------------------------------------------------------------

    def fail_next(self, match: str, status: int = 0, *, times: int = 1, body: Any = b"", **options: Any) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.faults.append(Fault(match, times, status, payload, **options))

    def gate(self, name: str) -> asyncio.Event:
        self.started.setdefault(name, asyncio.Event())
        return self.gates.setdefault(name, asyncio.Event())

    def rpc(self, method: str = "POST") -> list[tuple[str, int]]:
        return [(record.rpc, record.status) for record in self.records if record.method == method]

    async def arrived(self, rpc: str) -> None:
        """Wait until a request ``rpc`` (e.g. "notifications/initialized") has been answered."""
        await asyncio.wait_for(self._arrivals.setdefault(rpc, asyncio.Event()).wait(), WAIT)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    # -- HTTP ----------------------------------------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        message = json.loads(body) if body else {}
        rpc = _describe(message)
        refusal = self._verify(request, body)
        if refusal is not None:
            return self._answer(request, rpc, refusal)
        if request.method == "GET":
            return self._get(request)
        if request.method == "DELETE":
            self.sessions.discard(request.headers.get("mcp-session-id", ""))
            return self._answer(request, "DELETE", httpx.Response(200))
        fault = self._fault(message)
        if fault is not None:
            if fault.error is not None:
                self.records.append(Record("POST", rpc, 0))
                raise fault.error
            if fault.forget_session:
                self.sessions.clear()
            else:
                return self._answer(
                    request, rpc, httpx.Response(fault.status, headers=fault.headers, content=fault.body)
                )
        session = request.headers.get("mcp-session-id")
        if isinstance(message, list):
            answers = [_response(member["id"], {}) for member in message if "id" in member and "method" in member]
            return self._answer(request, rpc, httpx.Response(200, json=answers) if answers else httpx.Response(202))
        if message.get("method") != "initialize" and session not in self.sessions:
            return self._answer(request, rpc, httpx.Response(404, json={"error": "session not found"}))
        if "id" not in message or "method" not in message:
            return self._answer(request, rpc, httpx.Response(202))
        return await self._request(request, rpc, message)

    def _verify(self, request: httpx.Request, body: bytes) -> httpx.Response | None:
        result = verify(
            request.method,
            request.url.raw_path.decode(),
            list(request.headers.multi_items()),
            body,
            credentials_for=self.credentials.get,
            now=self.now(),
            region=REGION,
            service=SERVICE,
        )
        if result.ok and result.access_key_id in self.expired:
            return httpx.Response(
                403,
                headers={"x-amzn-ErrorType": "ExpiredTokenException"},
                json={"message": "The security token included in the request is expired"},
            )
        if result.ok:
            return None
        status, headers, payload = result.to_response()
        return httpx.Response(status, headers=headers, content=payload)

    def _fault(self, message: Any) -> Fault | None:
        if not isinstance(message, dict):
            return None
        names = {message.get("method"), (message.get("params") or {}).get("name")}
        for fault in self.faults:
            if fault.match in names:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def _request(self, request: httpx.Request, rpc: str, message: dict[str, Any]) -> httpx.Response:
        method, message_id = message["method"], message["id"]
        headers: dict[str, str] = {}
        if method == "initialize":
            if self.hold_initialize is not None:
                self.initialize_held.set()
                await self.hold_initialize.wait()
            session = f"session-{next(self._session_ids)}"
            self.sessions.add(session)
            headers["mcp-session-id"] = session
            result: Any = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "fake", "version": str(len(self.sessions))},
            }
            return self._answer(request, rpc, _json_answer(message_id, result, headers))
        if method == "tools/list":
            return self._answer(request, rpc, _json_answer(message_id, {"tools": [{"name": "echo"}]}, headers))
        if method != "tools/call":
            return self._answer(request, rpc, _json_answer(message_id, {}, headers))
        key = json.dumps(message_id)
        self.executions[key] = self.executions.get(key, 0) + 1
        name, arguments = message["params"]["name"], message["params"].get("arguments", {})
        if name == "echo":
            return self._answer(request, rpc, _json_answer(message_id, _text(arguments["message"]), headers))
        if name == "block":
            return self._answer(request, rpc, self._blocking(message_id, arguments["gate"]))
        if name == "twice":  # a server that answers the same request twice
            answer = _event(_response(message_id, _text("once"))) * 2
            return self._answer(request, rpc, httpx.Response(200, headers=_SSE, content=answer))
        if name == "progress":
            return self._answer(request, rpc, self._progress(message, arguments.get("steps", 2)))
        raise AssertionError(f"no tool {name}")

    def _blocking(self, message_id: Any, gate: str) -> httpx.Response:
        released = self.gate(gate)
        started = self.started[gate]

        async def events() -> AsyncIterator[bytes]:
            started.set()
            await released.wait()
            yield _event(_response(message_id, _text(f"released {gate}")))

        return httpx.Response(200, headers=_SSE, content=events())

    def _progress(self, message: dict[str, Any], steps: int) -> httpx.Response:
        token = message["params"].get("_meta", {}).get("progressToken", "p")

        async def events() -> AsyncIterator[bytes]:
            for step in range(1, steps + 1):
                progress = {"progressToken": token, "progress": step, "total": steps}
                yield _event({"jsonrpc": "2.0", "method": "notifications/progress", "params": progress})
            yield _event(_response(message["id"], _text(f"done after {steps} steps")))

        return httpx.Response(200, headers=_SSE, content=events())

    def _get(self, request: httpx.Request) -> httpx.Response:
        queue = self.standalone
        if queue is None:
            return self._answer(request, "GET", httpx.Response(405))
        if request.headers.get("mcp-session-id") not in self.sessions:
            return self._answer(request, "GET", httpx.Response(404))
        opened = self.get_opened

        async def events() -> AsyncIterator[bytes]:
            opened.set()
            while (event := await queue.get()) is not None:
                yield event

        return self._answer(request, "GET", httpx.Response(200, headers=_SSE, content=events()))

    def _answer(self, request: httpx.Request, rpc: str, response: httpx.Response) -> httpx.Response:
        self.records.append(Record(request.method, rpc, response.status_code, request.headers.get("mcp-session-id")))
        self._arrivals.setdefault(rpc, asyncio.Event()).set()
        response.headers["date"] = format_datetime(self.now().replace(microsecond=0), usegmt=True)
        return response


_SSE = {"content-type": "text/event-stream"}


def _describe(message: Any) -> str:
    if not isinstance(message, dict):
        return "batch" if isinstance(message, list) else ""
    if message.get("method") == "tools/call":
        return f"tools/call {message['params']['name']}"
    return message.get("method") or "response"


def _text(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}]}


def _response(message_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message_id, "result": result}


def _json_answer(message_id: Any, result: Any, headers: dict[str, str]) -> httpx.Response:
    return httpx.Response(200, headers=headers, json=_response(message_id, result))


def _event(message: Any) -> bytes:
    return b"event: message\ndata: " + json.dumps(message).encode() + b"\n\n"


def event(message: Any, event_id: str | None = None) -> bytes:
    """A standalone-stream event carrying ``message``."""
    return (f"id: {event_id}\n".encode() if event_id else b"") + _event(message)


# -- the bridge -------------------------------------------------------------------------------------------------


@dataclass
class Running:
    """A bridge under test and its surroundings."""

    bridge: Bridge
    server: FakeServer
    stdin: FakeStdin
    stdout: FakeStdout
    credentials: FakeCredentials
    sleeps: list[float]
    task: asyncio.Task[int]

    async def request(self, message: Any, timeout: float = WAIT) -> Any:
        self.stdin.send(message)
        return await self.stdout.receive(timeout)

    async def initialize(self) -> Any:
        """initialize, then notifications/initialized (returns once the server has both)."""
        answer = await self.request(initialize())
        self.stdin.send(INITIALIZED)
        await self.server.arrived("notifications/initialized")
        return answer

    async def finish(self) -> int:
        """End stdin and wait for the bridge to shut down; its exit code."""
        self.stdin.end()
        return await asyncio.wait_for(self.task, WAIT)


def config(**options: Any) -> ProxyConfig:
    options.setdefault("transport", "streamable-http")
    return ProxyConfig(target_url=URL, service=SERVICE, region=REGION, **options)


@contextlib.asynccontextmanager
async def running_bridge(
    server: FakeServer | None = None,
    *,
    credentials: FakeCredentials | None = None,
    grace_seconds: float = 5.0,
    handler: Callable[[httpx.Request], Any] | None = None,
    warm_cache: Any = None,
    **options: Any,
) -> AsyncIterator[Running]:
    """The bridge, serving ``server`` with ``config(**options)``; stopped (stdin ended) at the end if still running.
    Waits between retries are recorded in ``sleeps`` instead of slept; the jitter is fixed (0.5)."""
    server = server or FakeServer()
    credentials = credentials or FakeCredentials()
    proxy_config = config(**options)
    clock = SkewedClock()
    client = httpx.AsyncClient(
        auth=SigV4Auth(credentials, REGION, SERVICE, clock=clock),
        transport=httpx.MockTransport(handler or server.handle),
    )
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def signing_context() -> SigningContext:
        current = credentials.current
        return SigningContext(
            url=URL,
            region=REGION,
            service=SERVICE,
            access_key=current.masked_access_key,
            has_session_token=bool(current.session_token),
            credential_method=credentials.method,
            profile=credentials.profile,
            transport=proxy_config.transport if proxy_config.transport != "auto" else None,
        )

    stdin, stdout = FakeStdin(), FakeStdout()
    bridge = Bridge(
        proxy_config,
        client,
        stdin=stdin,  # type: ignore[arg-type]
        stdout=stdout,  # type: ignore[arg-type]
        signing_context=signing_context,
        credentials=credentials,
        grace_seconds=grace_seconds,
        clock=clock,
        random=lambda: 0.5,
        sleep=sleep,
        warm_cache=warm_cache,
    )
    task = asyncio.create_task(bridge.run())
    try:
        yield Running(bridge, server, stdin, stdout, credentials, sleeps, task)
    finally:
        if not task.done():
            stdin.end()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, WAIT)
        await client.aclose()

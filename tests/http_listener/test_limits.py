"""Issue 8, item 3: connection bounds. Slow or abusive clients cannot hold the listener's slots, memory or log.

Raw sockets (tests/support/rawhttp.py) send what real clients never do: request heads that never end, bodies
that stall, conflicting framing, CONNECT and the HTTP/2 preface. Timeouts are a fraction of a second here.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager

import httpx
import pytest

from sigv4_proxy.config import ProxyConfig
from sigv4_proxy.credentials import StaticCredentialProvider
from sigv4_proxy.emulate import generate_credentials
from sigv4_proxy.http_listener import HttpListener
from tests.support.rawhttp import RawClient, RecordingServer, http_responder
from tests.support.waiting import wait_until

from .conftest import LogLines, running_listener
from .processes import spawn_listener

CREDENTIALS = generate_credentials()
PROVIDER = StaticCredentialProvider(CREDENTIALS)
SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n"  # the blank line that ends a head never comes


def config_for(target_url: str, max_message_bytes: int = 64 * 1024 * 1024) -> ProxyConfig:
    return ProxyConfig(target_url=target_url, service="lambda", region="us-east-1", max_message_bytes=max_message_bytes)


def head(listener: HttpListener, method: str, target: str, *headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{listener.port}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def connect(listener: HttpListener) -> RawClient:
    return await RawClient.open("127.0.0.1", listener.port)


@pytest.fixture
async def upstream() -> AsyncIterator[RecordingServer]:
    async with RecordingServer(respond=http_responder()) as server:
        yield server


# --- timeouts ------------------------------------------------------------------------------------------------


async def test_slow_request_head_gets_408_and_is_closed(upstream: RecordingServer) -> None:
    async with (
        running_listener(config_for(upstream.url), PROVIDER, header_timeout=0.2) as listener,
        await connect(listener) as client,
    ):
        started = time.monotonic()
        await client.send(SLOW_HEAD)
        response = await client.read_http_response(timeout=5)
        assert await client.closed_within(2)
    assert time.monotonic() - started < 2
    assert response.status == 408
    assert response.json()["error"]["message"] == (
        "no complete request head within 0.2 s (--header-timeout): closing the connection"
    )
    assert upstream.connections == 0


async def test_silent_connection_is_closed_after_the_header_timeout(upstream: RecordingServer) -> None:
    async with (
        running_listener(config_for(upstream.url), PROVIDER, header_timeout=0.2) as listener,
        await connect(listener) as client,
    ):
        assert (await client.read_http_response(timeout=5)).status == 408  # connected, never sent a byte
        assert listener.open_connections == 0


async def test_idle_keep_alive_connection_is_closed(upstream: RecordingServer) -> None:
    async with (
        running_listener(config_for(upstream.url), PROVIDER, idle_timeout=0.2) as listener,
        await connect(listener) as client,
    ):
        await client.send(head(listener, "GET", "/healthz"))
        assert (await client.read_http_response(timeout=5)).status == 200
        started = time.monotonic()
        assert await client.closed_within(3)  # closed quietly: an idle keep-alive close is routine
        assert time.monotonic() - started < 3


async def test_stalled_body_gets_408(upstream: RecordingServer) -> None:
    async with (
        running_listener(config_for(upstream.url), PROVIDER, idle_timeout=0.2) as listener,
        await connect(listener) as client,
    ):
        await client.send(head(listener, "POST", "/", "Content-Length: 10")[:-2] + b"\r\nabc")
        response = await client.read_http_response(timeout=5)
    assert response.status == 408
    assert "--idle-timeout" in response.json()["error"]["message"]
    assert upstream.connections == 0


# --- connection cap ------------------------------------------------------------------------------------------


async def test_slow_loris_connections_do_not_starve_healthz(
    upstream: RecordingServer, log_lines: LogLines, capfd: pytest.CaptureFixture[str]
) -> None:
    """300 connections that never finish their request head: the cap closes the oldest to make room, /healthz
    answers at once, and the log stays a few lines long (no traceback)."""
    async with (
        running_listener(config_for(upstream.url), PROVIDER, max_connections=20, header_timeout=30) as listener,
        AsyncExitStack() as stack,
    ):
        for _ in range(300):
            client = await stack.enter_async_context(await connect(listener))
            await client.send(SLOW_HEAD)
        started = time.monotonic()
        async with await connect(listener) as probe:
            await probe.send(head(listener, "GET", "/healthz"))
            health = await probe.read_http_response(timeout=5)
        elapsed = time.monotonic() - started
        assert listener.open_connections <= 20
    assert health.status == 200
    assert health.json()["status"] == "ok"
    assert elapsed < 2
    stderr = capfd.readouterr().err
    assert len(log_lines.lines) < 20, log_lines.text
    assert len(stderr.splitlines()) < 20, stderr
    assert "Traceback" not in log_lines.text + stderr


async def test_every_connection_busy_gets_503() -> None:
    """When every connection has a request in flight (here: to a target that never answers), a new one is
    answered 503 at once instead of waiting in the kernel's queue."""
    async with (
        RecordingServer() as hanging,
        running_listener(config_for(hanging.url), PROVIDER, max_connections=2) as listener,
        await connect(listener) as first,
        await connect(listener) as second,
    ):
        for client in (first, second):
            await client.send(head(listener, "POST", "/", "Content-Length: 2") + b"{}")
        await wait_until(lambda: hanging.connections == 2)
        started = time.monotonic()
        async with await connect(listener) as third:
            await third.send(head(listener, "GET", "/healthz"))
            response = await third.read_http_response(timeout=5)
        assert time.monotonic() - started < 2
    assert response.status == 503
    assert response.header("retry-after") == "1"
    assert response.json()["error"] == {
        "message": "the listener is at --max-connections 2 and every connection has a request in flight: retry "
        "shortly, or start the listener with a higher --max-connections",
        "kind": "too_many_connections",
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sets RLIMIT_NOFILE with preexec_fn")
@pytest.mark.parametrize(
    ("hard_limit", "healthz_within"),
    [
        (None, 1.0),  # the listener raises its soft limit: accept() never runs out
        (256, 3.0),  # it cannot: accept() runs out, asyncio pauses accepting for a second, the log stays small
    ],
)
def test_slow_loris_with_256_file_descriptors_keeps_healthz_and_the_log_small(
    hard_limit: int | None, healthz_within: float
) -> None:
    """The incident: 300 slow-header connections against a process limited to 256 descriptors (macOS's
    default) made /healthz time out, and asyncio logged 36,000 tracebacks in ten seconds."""
    with listener_process(soft=256, hard=hard_limit) as (url, lines):
        port = int(url.rsplit(":", 1)[1])
        sockets = []
        try:
            for _ in range(300):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(SLOW_HEAD)
                sockets.append(sock)
            started = time.monotonic()
            health = httpx.get(f"{url}/healthz", timeout=10)
            elapsed = time.monotonic() - started
            time.sleep(0.5)  # what the flood would print, it prints now
        finally:
            for sock in sockets:
                sock.close()
    assert health.status_code == 200
    assert elapsed < healthz_within
    text = "\n".join(lines)
    assert "Traceback" not in text
    assert len(lines) < 20, text


@contextmanager
def listener_process(soft: int, hard: int | None) -> Iterator[tuple[str, list[str]]]:
    """`sigv4-proxy http` with RLIMIT_NOFILE `soft` (and `hard`, else the current hard limit): (URL, stderr)."""
    import resource

    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": CREDENTIALS.access_key_id,
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS.secret_access_key,
        "AWS_REGION": "us-east-1",
        "AWS_SERVICE_NAME": "lambda",
        "MCP_TARGET_URL": "http://127.0.0.1:9/mcp",
    }
    limits = (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1] if hard is None else hard)
    spawned = spawn_listener(
        env, capture_stdout=False, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limits)
    )
    process = spawned.process
    try:
        yield spawned.url, spawned.lines
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        spawned.reader.join(5)


# --- buffered bodies -----------------------------------------------------------------------------------------


async def test_request_bodies_held_at_once_are_capped(upstream: RecordingServer) -> None:
    config = config_for(upstream.url, max_message_bytes=10_000)
    async with (
        running_listener(config, PROVIDER, max_buffered_bytes=1000) as listener,
        await connect(listener) as holding,
    ):
        await holding.send(head(listener, "POST", "/", "Content-Length: 900") + b"a" * 800)
        await wait_until(lambda: listener.buffered_bytes == 800)
        async with await connect(listener) as declared:
            await declared.send(head(listener, "POST", "/", "Content-Length: 300") + b"b" * 300)
            refused = await declared.read_http_response(timeout=5)
        async with await connect(listener) as chunked:
            await chunked.send(head(listener, "POST", "/", "Transfer-Encoding: chunked") + b"12c\r\n" + b"c" * 300)
            refused_chunked = await chunked.read_http_response(timeout=5)
        await holding.send(b"a" * 100)
        completed = await holding.read_http_response(timeout=5)
        await wait_until(lambda: listener.buffered_bytes == 0)
        async with await connect(listener) as later:
            await later.send(head(listener, "POST", "/", "Content-Length: 300") + b"d" * 300)
            accepted = await later.read_http_response(timeout=5)
    assert (refused.status, refused_chunked.status, completed.status, accepted.status) == (503, 503, 200, 200)
    error = refused.json()["error"]
    assert error["kind"] == "buffer_full"
    assert "--max-buffered-bytes 1000" in error["message"]
    assert refused_chunked.json()["error"]["kind"] == "buffer_full"
    assert upstream.connections == 2


# --- framing and protocol ------------------------------------------------------------------------------------


async def test_content_length_with_transfer_encoding_is_refused_and_closed(upstream: RecordingServer) -> None:
    """RFC 9112 §6.1: such a request is a smuggling attempt or a broken client; answer 400 and close, so a
    request hidden in its body is never read."""
    async with running_listener(config_for(upstream.url), PROVIDER) as listener, await connect(listener) as client:
        smuggled = head(listener, "GET", "/smuggled")
        await client.send(
            head(listener, "POST", "/", "Content-Length: 5", "Transfer-Encoding: chunked") + b"0\r\n\r\n" + smuggled
        )
        response = await client.read_http_response(timeout=5)
        assert await client.closed_within(3)
    assert response.status == 400
    assert response.header("connection") == "close"
    assert response.json()["error"]["kind"] == "conflicting_framing"
    assert upstream.connections == 0


async def test_headers_named_by_connection_are_not_forwarded(upstream: RecordingServer) -> None:
    async with running_listener(config_for(upstream.url), PROVIDER) as listener, await connect(listener) as client:
        await client.send(
            head(
                listener,
                "GET",
                "/",
                "Connection: keep-alive, X-Api-Key, Mcp-Session-Id",
                "X-Api-Key: secret-api-key",
                "Mcp-Session-Id: s1",
                "Accept: application/json",
            )
        )
        assert (await client.read_http_response(timeout=5)).status == 200
    (forwarded,) = upstream.received
    assert b"accept: application/json" in forwarded.lower()
    assert b"secret-api-key" not in forwarded
    assert b"mcp-session-id" not in forwarded.lower()


@pytest.mark.parametrize(
    ("request_head", "status", "says"),
    [
        (b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n", 405, "not a forward proxy"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP/2 is not supported"),
        (b"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "asterisk form"),
        (b"TRACE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405, "echo the signed request"),
    ],
)
async def test_connect_http2_preface_options_star_and_trace_are_refused(
    upstream: RecordingServer, request_head: bytes, status: int, says: str
) -> None:
    async with running_listener(config_for(upstream.url), PROVIDER) as listener, await connect(listener) as client:
        await client.send(request_head)
        response = await client.read_http_response(timeout=5)
        assert await client.closed_within(3)
    assert response.status == status
    assert says in response.json()["error"]["message"]
    assert upstream.connections == 0


# --- logging -------------------------------------------------------------------------------------------------


async def test_asyncio_error_floods_become_one_line(upstream: RecordingServer, log_lines: LogLines) -> None:
    """What asyncio reports when accept() runs out of descriptors (up to `backlog` times per wakeup, each with a
    traceback) is logged once per interval, without a traceback, with a count of the lines held back."""
    async with running_listener(config_for(upstream.url), PROVIDER):
        loop = asyncio.get_running_loop()
        for _ in range(5000):
            loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(errno.EMFILE, "Too many open files"),
                }
            )
    assert "Traceback" not in log_lines.text
    assert log_lines.lines == [
        "ERROR sigv4_proxy.http HTTP listener: socket.accept() out of system resource: OSError: [Errno 24] Too "
        "many open files",
        "INFO sigv4_proxy.http 4999 more 'asyncio' log lines were held back (at most one per 10 s)",
    ]

"""Issue 8, items 1 and 2, end to end: a request signed with the user's credentials goes to the target or nowhere,
and only this machine's own clients — not a web page — can send one.

The "target" and the "trap" are real sockets on 127.0.0.1 (tests/support/rawhttp.py) that record every
connection: a refused request must reach neither. Requests go over raw sockets, because well-behaved clients
cannot send the request targets and Host headers an attacker does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sigv4_proxy import http_listener
from sigv4_proxy.config import ProxyConfig
from sigv4_proxy.credentials import StaticCredentialProvider
from sigv4_proxy.emulate import generate_credentials
from sigv4_proxy.http_listener import HttpListener
from tests.support.rawhttp import RawClient, RawResponse, RecordingServer, http_responder

from .conftest import LogLines, running_listener

CREDENTIALS = generate_credentials(session_token=True)
PROVIDER = StaticCredentialProvider(CREDENTIALS)
ARN = "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fr-1"


def config_for(target_url: str) -> ProxyConfig:
    return ProxyConfig(target_url=target_url, service="lambda", region="us-east-1")


def raw_request(method: str, target: str, host: str | None, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines.extend(headers)
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def send(listener: HttpListener, data: bytes) -> RawResponse:
    async with await RawClient.open("127.0.0.1", listener.port) as client:
        await client.send(data)
        return await client.read_http_response(timeout=10)


def local(listener: HttpListener) -> str:
    return f"127.0.0.1:{listener.port}"


@pytest.fixture
async def upstream() -> AsyncIterator[RecordingServer]:
    """The target: answers 200 to every complete request, and records it."""
    async with RecordingServer(respond=http_responder()) as server:
        yield server


@pytest.fixture
async def trap() -> AsyncIterator[RecordingServer]:
    """Another local service (think: a debug port, a metadata proxy): nothing may ever connect to it."""
    async with RecordingServer() as server:
        yield server


# --- item 1: URL confinement ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target_path", ["", "/"])  # Lambda function URLs: nothing after the host
@pytest.mark.parametrize(
    ("form", "method", "request_target", "status"),
    [
        ("userinfo", "GET", "@127.0.0.1:{trap}/", 400),
        ("userinfo, named host", "POST", "@localhost:{trap}/2015-03-31/functions", 400),
        ("host suffix", "GET", ".1:{trap}/x", 400),  # target host 127.0.0 + .1:port
        ("absolute-form", "GET", "http://127.0.0.1:{trap}/x", 400),
        ("authority-form", "GET", "127.0.0.1:{trap}", 400),
        ("CONNECT", "CONNECT", "127.0.0.1:{trap}", 405),
        ("asterisk-form", "OPTIONS", "*", 400),
    ],
)
async def test_request_targets_naming_another_host_reach_nothing(
    upstream: RecordingServer,
    trap: RecordingServer,
    target_path: str,
    form: str,
    method: str,
    request_target: str,
    status: int,
) -> None:
    # The host-suffix attack needs a target URL without a port, whose host the suffix completes.
    target_url = f"http://127.0.0{target_path}" if form == "host suffix" else upstream.url + target_path
    async with running_listener(config_for(target_url), PROVIDER) as listener:
        response = await send(
            listener, raw_request(method, request_target.format(trap=trap.port), local(listener), body=b"{}")
        )
    assert response.status == status, response.raw
    assert response.json()["error"]["kind"] in ("bad_request_target", "method_refused")
    assert (trap.connections, upstream.connections) == (0, 0)  # nothing was signed, nothing was sent


@pytest.mark.parametrize(
    "request_target",
    [
        "/../../admin",
        "/x/../../../admin",
        "/%2e%2e/%2e%2e/admin",
        "/%2E%2E/admin",
        "/..%2f..%2fadmin",
        "/..%5c..%5cadmin",
        "/%252e%252e/admin",
    ],
)
async def test_paths_leaving_the_target_path_are_refused(upstream: RecordingServer, request_target: str) -> None:
    async with running_listener(config_for(f"{upstream.url}/prod/mcp"), PROVIDER) as listener:
        response = await send(listener, raw_request("GET", request_target, local(listener)))
    assert response.status == 400, response.raw
    error = response.json()["error"]
    assert error["kind"] == "bad_request_target"
    assert "climb out of the target's path" in error["message"]
    assert upstream.connections == 0


async def test_legitimate_paths_keep_their_bytes(upstream: RecordingServer) -> None:
    async with running_listener(config_for(f"{upstream.url}/prod/mcp"), PROVIDER) as listener:
        encoded = await send(listener, raw_request("POST", f"/runtimes/{ARN}/invocations?q=1", local(listener)))
        dotted = await send(listener, raw_request("GET", "/x/../y", local(listener)))
        root = await send(listener, raw_request("GET", "/?a=b", local(listener)))
    assert (encoded.status, dotted.status, root.status) == (200, 200, 200)
    request_lines = [received.split(b"\r\n", 1)[0] for received in upstream.received]
    assert request_lines == [
        f"POST /prod/mcp/runtimes/{ARN}/invocations?q=1 HTTP/1.1".encode(),
        b"GET /prod/mcp/y HTTP/1.1",
        b"GET /prod/mcp?a=b HTTP/1.1",
    ]
    assert CREDENTIALS.session_token is not None
    assert all(CREDENTIALS.session_token.encode() in received for received in upstream.received)  # signed


async def test_the_final_url_is_checked_right_before_signing(
    upstream: RecordingServer, trap: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever builds the upstream URL (here: a stand-in for a future bug), a request to another host or port
    is never signed nor sent."""
    monkeypatch.setattr(http_listener, "upstream_url", lambda target, request_target: f"{trap.url}/prod/mcp")
    async with running_listener(config_for(f"{upstream.url}/prod/mcp"), PROVIDER) as listener:
        response = await send(listener, raw_request("GET", "/", local(listener)))
    assert response.status == 400, response.raw
    assert "only the target" in response.json()["error"]["message"]
    assert (trap.connections, upstream.connections) == (0, 0)


# --- item 2: Host and Origin ---------------------------------------------------------------------------------


async def test_dns_rebinding_host_is_refused(upstream: RecordingServer, log_lines: LogLines) -> None:
    """A page on attacker.example whose name now resolves to 127.0.0.1 sends Host: attacker.example:<port>."""
    async with running_listener(config_for(upstream.url), PROVIDER) as listener:
        host = f"attacker.example:{listener.port}"
        response = await send(listener, raw_request("POST", "/", host, body=b"{}"))
        health = await send(listener, raw_request("GET", "/healthz", host))
    assert (response.status, health.status) == (421, 421)
    error = response.json()["error"]
    assert error["kind"] == "host_not_allowed"
    assert f"--allowed-host {host}" in error["message"]
    assert CREDENTIALS.masked_access_key not in health.body.decode()
    assert upstream.connections == 0
    assert f"refused Host '{host}': not the listen address; allow it with --allowed-host {host}" in log_lines.text


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.2:{port}", "evil.example", "127.0.0.1:{port}.nip.io"])
async def test_other_ports_and_names_are_refused(upstream: RecordingServer, host: str) -> None:
    async with running_listener(config_for(upstream.url), PROVIDER) as listener:
        # localhost on another port is not this listener (port + 1 stands for any other one)
        port = listener.port + 1 if host.startswith("localhost") else listener.port
        response = await send(listener, raw_request("GET", "/healthz", host.format(port=port)))
    assert response.status == 421


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "127.0.0.1", "[::1]:{port}"])
async def test_this_machines_names_are_accepted(upstream: RecordingServer, host: str) -> None:
    async with running_listener(config_for(upstream.url), PROVIDER) as listener:
        response = await send(listener, raw_request("GET", "/healthz", host.format(port=listener.port)))
    assert response.status == 200


async def test_allowed_host_admits_a_name(upstream: RecordingServer) -> None:
    options = {"allowed_hosts": frozenset({"devbox.local", "localhost:9000"})}
    async with running_listener(config_for(upstream.url), PROVIDER, **options) as listener:
        by_name = await send(listener, raw_request("GET", "/", f"devbox.local:{listener.port}"))
        tunnel = await send(listener, raw_request("GET", "/", "localhost:9000"))  # an `ssh -L 9000:...` tunnel
        other = await send(listener, raw_request("GET", "/", "localhost:9001"))
    assert (by_name.status, tunnel.status, other.status) == (200, 200, 421)
    assert upstream.connections == 2


async def test_requests_from_web_pages_are_refused(upstream: RecordingServer, log_lines: LogLines) -> None:
    async with running_listener(config_for(upstream.url), PROVIDER) as listener:
        cross_site = await send(
            listener, raw_request("POST", "/", local(listener), "Origin: https://evil.example", body=b"{}")
        )
        sandboxed = await send(listener, raw_request("GET", "/healthz", local(listener), "Origin: null"))
        # Even the listener's own origin: a page served through the listener is still a page.
        same = await send(listener, raw_request("POST", "/", local(listener), f"Origin: http://{local(listener)}"))
    assert (cross_site.status, sandboxed.status, same.status) == (403, 403, 403)
    error = cross_site.json()["error"]
    assert error["kind"] == "origin_not_allowed"
    assert "--allowed-origin https://evil.example" in error["message"]
    assert upstream.connections == 0
    assert "allow it with --allowed-origin https://evil.example" in log_lines.text


async def test_allowed_origin_is_forwarded(upstream: RecordingServer) -> None:
    options = {"allowed_origins": frozenset({"http://localhost:6274"})}
    async with running_listener(config_for(upstream.url), PROVIDER, **options) as listener:
        allowed = await send(listener, raw_request("POST", "/", local(listener), "Origin: http://localhost:6274"))
        other = await send(listener, raw_request("POST", "/", local(listener), "Origin: http://localhost:6275"))
    assert (allowed.status, other.status) == (200, 403)
    assert upstream.connections == 1
    assert b"origin:" not in upstream.received[0].lower()  # not on the forwarding allow-list

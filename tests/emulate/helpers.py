"""Signing peers for the emulator tests: the core's signer (through the lead's SigV4Auth) and botocore.

The official `mcp` SDK client speaks httpx2, not httpx; :class:`Httpx2SigV4Auth` adapts the product's
:class:`sigv4_proxy.SigV4Auth` (an httpx.Auth) to it, so the SDK client signs every request with our signer.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import IO, Any

import httpx
import httpx2
from botocore.auth import SigV4Auth as BotocoreSigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from sigv4_proxy import Credentials, SigV4Auth, sign
from sigv4_proxy.emulate.server import McpEmulator


class Httpx2SigV4Auth(httpx2.Auth):
    """The product's SigV4Auth, on httpx2 requests (same request API as httpx)."""

    requires_request_body = True

    def __init__(self, credentials: Credentials, region: str, service: str, **kwargs: Any) -> None:
        self.credentials = credentials
        self.inner = SigV4Auth(credentials, region, service, **kwargs)

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        self.inner.sign_request(request, self.credentials)  # type: ignore[arg-type]
        yield request


def signed_headers_core(
    method: str,
    url: str,
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str,
    *,
    headers: dict[str, str] | None = None,
    now: datetime | None = None,
    algorithm: str = "v4",
) -> dict[str, str]:
    """Headers for an httpx request signed by the core's sign()."""
    base = {"content-type": "application/json", "accept": "application/json, text/event-stream", **(headers or {})}
    signed = sign(
        method, url, base, body, credentials=credentials, region=region, service=service, now=now, algorithm=algorithm
    )
    return {**base, **signed.added_headers}


def signed_headers_botocore(
    method: str, url: str, body: bytes, credentials: Credentials, region: str, service: str
) -> dict[str, str]:
    """Headers signed by botocore's SigV4Auth: an independent signer."""
    base = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    request = AWSRequest(method=method, url=url, data=body, headers=base)
    creds = BotocoreCredentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
    BotocoreSigV4Auth(creds, service, region).add_auth(request)
    return dict(request.headers.items())


def initialize_body(request_id: int = 1, protocol_version: str = "2025-06-18") -> bytes:
    return (
        b'{"jsonrpc":"2.0","id":%d,"method":"initialize","params":{"protocolVersion":"%s",'
        b'"capabilities":{},"clientInfo":{"name":"test","version":"1"}}}' % (request_id, protocol_version.encode())
    )


def post_signed(
    emulator: McpEmulator,
    body: bytes,
    *,
    credentials: Credentials | None = None,
    headers: dict[str, str] | None = None,
    now: datetime | None = None,
    region: str | None = None,
    service: str | None = None,
    url: str | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST ``body`` to the emulator, signed by the core (defaults: the emulator's own settings)."""
    target = url or emulator.url
    signed = signed_headers_core(
        "POST",
        target,
        body,
        credentials or emulator.credentials,
        region or emulator.region,
        service or emulator.service,
        headers=headers,
        now=now,
    )
    return httpx.post(target, content=body, headers=signed, timeout=timeout)


def signing_http_client(emulator: McpEmulator, credentials: Credentials | None = None) -> httpx2.AsyncClient:
    auth = Httpx2SigV4Auth(credentials or emulator.credentials, emulator.region, emulator.service)
    return httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30.0, read=60.0))


@asynccontextmanager
async def mcp_client(emulator: McpEmulator, *, mode: str = "legacy", **kwargs: Any) -> AsyncIterator[Any]:
    """The official MCP SDK client over Streamable HTTP, every request signed with the emulator's credentials."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        signing_http_client(emulator) as http_client,
        Client(streamable_http_client(emulator.url, http_client=http_client), mode=mode, **kwargs) as client,
    ):
        yield client


@contextmanager
def emulate(
    *args: str, stdin: IO[str] | None = None, env: Mapping[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run `sigv4-proxy emulate mcp ARGS` (with `stdin` and `env` when given); yields the process and the first
    stdout line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sigv4_proxy", "emulate", "mcp", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first, process.stderr.read() if process.stderr else "no output"
        yield process, first
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)

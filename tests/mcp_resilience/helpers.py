"""Drivers for the resilience tests: the proxy as a real subprocess (``python -m sigv4_proxy``) in front of
``emulate mcp``, driven by the official ``mcp`` SDK client or line by line.

Backoff is made reproducible with ``SIGV4_PROXY_RETRY_JITTER=0``: full-jitter waits become 0 s, the cold-start
(424) waits exactly 1 s and 2 s; ``Retry-After`` is honoured as sent.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from tests.mcp_proxy.harness import RawProxy, Upstream, call, initialize_message, proxied_client, raw_proxy

__all__ = [
    "DETERMINISTIC",
    "call",
    "error_of",
    "exchange",
    "initialize_message",
    "resilient_client",
    "resilient_proxy",
]

DETERMINISTIC = {"SIGV4_PROXY_RETRY_JITTER": "0"}
UPSTREAM_ERROR = -32000


def _env(env: Mapping[str, str] | None) -> dict[str, str]:
    return {**DETERMINISTIC, **(env or {})}


@contextlib.asynccontextmanager
async def resilient_proxy(
    emulator: Upstream | None, *args: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[RawProxy]:
    async with raw_proxy(emulator, *args, env=_env(env)) as proxy:
        yield proxy


@contextlib.asynccontextmanager
async def resilient_client(
    emulator: Upstream | None, *args: str, env: Mapping[str, str] | None = None, **kwargs: Any
) -> AsyncIterator[Any]:
    async with proxied_client(emulator, *args, env=_env(env), **kwargs) as client:
        yield client


async def exchange(proxy: RawProxy, message: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
    """Send a request; return its one response. Everything before it must be a notification (never another
    response), and the response must carry the request's id."""
    await proxy.send(message)
    while True:
        received = await proxy.receive(timeout)
        if "method" in received and "id" not in received:
            continue  # a notification (progress, logging) about this request
        assert received.get("id") == message["id"], f"unexpected message before the response: {received}"
        assert ("result" in received) != ("error" in received), received
        return received


async def assert_nothing_else(proxy: RawProxy) -> None:
    """Exactly one response per request: the next line after all earlier answers is the answer to a probe."""
    probe_id = f"probe-{uuid.uuid4().hex[:8]}"
    await proxy.send(call(probe_id, "echo", {"message": "probe"}))
    received = await proxy.receive()
    assert received.get("id") == probe_id and "result" in received, f"a stray line: {received}"


def error_of(response: dict[str, Any]) -> dict[str, Any]:
    assert "error" in response, response
    assert response["error"]["code"] == UPSTREAM_ERROR, response
    return response["error"]


def log_lines(stderr: str, pattern: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(pattern, line)]

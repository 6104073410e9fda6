"""Harness for the MCP proxy's end-to-end tests (and the resilience tests built on them).

The proxy always runs as a real subprocess (``python -m sigv4_proxy``) speaking stdio, driven either by the
official ``mcp`` SDK client (:func:`proxied_client`) or by raw lines (:class:`RawProxy`), against
``emulate mcp`` (:func:`sigv4_proxy.emulate.server.start_mcp`): a loopback endpoint that verifies every
signature with the core's ``verify()`` and serves the SDK's MCP server behind it. :class:`Callbacks` records
what the server sends the client; :func:`text_of` reads a tool's text answer.

The emulator itself comes from the ``emulator`` fixture (tests/conftest.py, tests/support/emulators.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import mcp_types as types

if TYPE_CHECKING:
    from sigv4_proxy.signing.model import Credentials

PROXY = [sys.executable, "-m", "sigv4_proxy"]
READY = "Proxy is ready to accept MCP protocol messages"


class Upstream(Protocol):
    """What the proxy is pointed at: the emulator (``McpEmulator``) or a hostile server (tests/support/hostile.py)."""

    def env(self, credentials: Credentials | None = None) -> dict[str, str]:
        """``MCP_TARGET_URL``, region, service and keys for the proxy to reach it."""
        ...


def run_cli(args: Sequence[str], env: Mapping[str, str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``sigv4-proxy ARGS`` run to its end with stdin at end of input (nothing waits for a client) and its
    output captured as text."""
    return subprocess.run(
        [*PROXY, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        check=False,
    )


def proxy_env(
    emulator: Upstream | None, extra: Mapping[str, str] | None = None, credentials: Credentials | None = None
) -> dict[str, str]:
    """A minimal environment for the proxy subprocess: no developer AWS config, the emulator's settings."""
    empty = Path(tempfile.gettempdir()) / "sigv4-proxy-tests-no-aws"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(empty),
        "AWS_CONFIG_FILE": str(empty / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    }
    if emulator is not None:
        env.update(emulator.env(credentials))
    env.update(extra or {})
    return env


@contextlib.asynccontextmanager
async def proxied_client(
    emulator: Upstream | None,
    *args: str,
    env: Mapping[str, str] | None = None,
    mode: str = "legacy",
    stderr_sink: list[str] | None = None,
    credentials: Credentials | None = None,
    **client_kwargs: Any,
) -> AsyncIterator[Any]:
    """An ``mcp.Client`` connected to the proxy (a subprocess) in front of ``emulator``.

    The proxy's stderr is appended to ``stderr_sink`` when the client closes.
    """
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=PROXY[0], args=[*PROXY[1:], *args], env=proxy_env(emulator, env, credentials)
    )
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errlog:
        try:
            async with Client(stdio_client(params, errlog=errlog), mode=mode, **client_kwargs) as client:
                yield client
        finally:
            errlog.seek(0)
            text = errlog.read()
            if stderr_sink is not None:
                stderr_sink.append(text)


class RawProxy:
    """The proxy as a subprocess driven line by line (for what an SDK client would never send)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr_chunks: list[bytes] = []
        self._stderr_task = asyncio.create_task(self._drain_stderr())

    @classmethod
    async def start(cls, emulator: Upstream | None, *args: str, env: Mapping[str, str] | None = None) -> RawProxy:
        process = await asyncio.create_subprocess_exec(
            *PROXY,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=proxy_env(emulator, env),
            limit=256 * 1024 * 1024,
        )
        return cls(process)

    async def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(65536):
            self.stderr_chunks.append(chunk)

    @property
    def stderr(self) -> str:
        return b"".join(self.stderr_chunks).decode("utf-8", "replace")

    async def send(self, data: bytes | str | dict[str, Any]) -> None:
        assert self.process.stdin is not None
        if isinstance(data, dict):
            data = json.dumps(data)
        if isinstance(data, str):
            data = data.encode()
        self.process.stdin.write(data if data.endswith(b"\n") else data + b"\n")
        await self.process.stdin.drain()

    async def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        await self.process.stdin.drain()

    async def receive(self, timeout: float = 15.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise EOFError(f"the proxy closed stdout; stderr:\n{self.stderr}")
        return json.loads(line)

    async def receive_line(self, timeout: float = 15.0) -> bytes:
        assert self.process.stdout is not None
        return await asyncio.wait_for(self.process.stdout.readline(), timeout)

    async def request(self, message: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """Send a request and return its response (other messages in between are skipped)."""
        await self.send(message)
        while True:
            received = await self.receive(timeout)
            if received.get("id") == message["id"] and ("result" in received or "error" in received):
                return received

    async def initialize(self, protocol_version: str = "2025-06-18") -> dict[str, Any]:
        response = await self.request(initialize_message(1, protocol_version))
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return response

    async def close(self, timeout: float = 15.0) -> int:
        """Close stdin (the MCP way to stop a stdio server) and wait for the exit code."""
        assert self.process.stdin is not None
        if not self.process.stdin.is_closing():
            self.process.stdin.close()
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await self._stderr_task
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._stderr_task.cancel()


def initialize_message(message_id: Any = 1, protocol_version: str = "2025-06-18") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": message_id,
        "method": "initialize",
        "params": {
            "protocolVersion": protocol_version,
            "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "1"},
        },
    }


def call(message_id: Any, tool: str, arguments: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": message_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments or {}, **params},
    }


@contextlib.asynccontextmanager
async def raw_proxy(
    emulator: Upstream | None, *args: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[RawProxy]:
    proxy = await RawProxy.start(emulator, *args, env=env)
    try:
        yield proxy
    finally:
        await proxy.kill()


def ids_of(lines: Sequence[dict[str, Any]]) -> list[Any]:
    return [line.get("id") for line in lines]


class Callbacks:
    """Client-side handlers for server-to-client requests and notifications, recording what arrived."""

    def __init__(self) -> None:
        self.progress: list[tuple[float, float | None, str | None]] = []
        self.logs: list[Any] = []
        self.notifications: list[Any] = []

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress.append((progress, total, message))

    async def elicitation(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def sampling(self, context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        text = params.messages[0].content.text  # type: ignore[union-attr]
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"model says: {text}"), model="test-model"
        )

    async def roots(self, context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    async def logging(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params.data)

    async def messages(self, message: Any) -> None:
        self.notifications.append(message)

    def client_kwargs(self) -> dict[str, Any]:
        return {
            "elicitation_callback": self.elicitation,
            "sampling_callback": self.sampling,
            "list_roots_callback": self.roots,
            "logging_callback": self.logging,
            "message_handler": self.messages,
        }


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text

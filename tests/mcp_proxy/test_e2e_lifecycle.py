"""Start-up, shutdown (EOF, SIGTERM, SIGINT, the grace period, DELETE of the session), what the proxy imports,
and the log scan: a whole session at debug level leaks no secret, session token or signature."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from sigv4_proxy.emulate import McpEmulator
from tests.support.waiting import wait_until

from .harness import PROXY, READY, call, proxied_client, proxy_env, raw_proxy

pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


def deletes(emulator: McpEmulator, since: int) -> list[Any]:
    return [record for record in emulator.requests[since:] if record.method == "DELETE"]


async def test_startup_lines_end_with_ready_and_mask_the_key(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        assert await proxy.close() == 0
    lines = proxy.stderr.splitlines()
    ready = next(index for index, line in enumerate(lines) if line.endswith(READY))
    startup = lines[: ready + 1]
    key = emulator.credentials.access_key_id
    assert f"Credentials: access key {key[:4]}****{key[-4:]}, from env" in "\n".join(startup)
    assert "Signing: SigV4, region us-east-1 (AWS_REGION), service execute-api (AWS_SERVICE_NAME)" in startup[2]
    assert key not in proxy.stderr and emulator.credentials.secret_access_key not in proxy.stderr


async def test_eof_lets_in_flight_requests_finish_then_deletes_the_session(emulator: McpEmulator) -> None:
    since = len(emulator.requests)
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        await proxy.send(call(2, "sleep", {"seconds": 0.5}))
        assert proxy.process.stdin is not None
        proxy.process.stdin.close()  # EOF while the call is in flight
        assert (await proxy.receive())["result"]["content"][0]["text"] == "slept 0.5s"
        assert await proxy.close() == 0
    assert len(deletes(emulator, since)) == 1 and deletes(emulator, since)[0].ok
    assert "shutting down (stdin closed): 1 message(s) in flight" in proxy.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signals_shut_down_cleanly(emulator: McpEmulator, signum: signal.Signals) -> None:
    since = len(emulator.requests)
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        await proxy.send(call(3, "sleep", {"seconds": 0.5}))
        await wait_until(lambda: emulator.executions.count(3) == 1, what="the server to start the call")
        proxy.process.send_signal(signum)
        assert (await proxy.receive())["result"]["content"][0]["text"] == "slept 0.5s"
        assert await asyncio.wait_for(proxy.process.wait(), 15) == 0
        await proxy.close()
    assert f"shutting down ({signum.name})" in proxy.stderr
    assert len(deletes(emulator, since)) == 1


async def test_requests_outliving_the_grace_period_get_an_error(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator) as proxy:
        await proxy.initialize()
        await proxy.send(call("slow", "sleep", {"seconds": 30}))
        # the signal must find the call in flight: sent, and running on the server
        await wait_until(lambda: emulator.executions.count("slow") == 1, what="the server to start the call")
        proxy.process.send_signal(signal.SIGTERM)
        assert await proxy.receive(timeout=20) == {
            "jsonrpc": "2.0",
            "id": "slow",
            "error": {"code": -32000, "message": "the proxy shut down before the server answered this request"},
        }
        assert await proxy.close() == 0


async def test_json_log_format(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator, "--log-format", "json", "--log-level", "debug") as proxy:
        await proxy.initialize()
        assert await proxy.close() == 0
    entries = [json.loads(line) for line in proxy.stderr.splitlines()]
    assert any(entry["message"] == READY and entry["level"] == "info" for entry in entries)
    assert {"time", "level", "logger", "message"} <= set(entries[0])


async def test_whole_session_at_debug_level_leaks_no_secret(emulator: McpEmulator) -> None:
    """A session token, every message type, and a failing signature (whose AWS error quotes the canonical
    request with the token): stderr must show none of the secret, the token or a signature."""
    credentials = emulator.rotate_credentials(session_token=True)
    assert credentials.session_token
    stderr: list[str] = []

    async def elicitation(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async with proxied_client(
        emulator,
        "--log-level",
        "debug",
        "--sse",
        "--headers",
        "x-team=blue",
        credentials=credentials,
        stderr_sink=stderr,
        elicitation_callback=elicitation,
    ) as client:
        await client.send_ping()
        await client.list_tools()
        await client.call_tool("echo", {"message": "hello"})
        await client.call_tool("progress", {"steps": 2, "delay_seconds": 0.01})
        await client.call_tool("elicit", {})
        await client.read_resource("emulator://info")
    bad = type(credentials)(
        credentials.access_key_id, "wrong" + credentials.secret_access_key[5:], credentials.session_token
    )
    async with raw_proxy(emulator, "--log-level", "debug", env=emulator.env(bad)) as proxy:
        failed = await proxy.request(call(1, "echo", {"message": "x"}))
        assert failed["error"]["data"]["kind"] == "signature_mismatch"
        await proxy.close()
    stderr.append(proxy.stderr)

    log = "\n".join(stderr)
    assert "MCP session established" in log and "failed: HTTP 403 InvalidSignatureException" in log
    for secret in (credentials.secret_access_key, credentials.session_token, bad.secret_access_key):
        assert secret not in log
        assert secret[:16] not in log
    assert credentials.access_key_id not in log
    assert not re.search(r"\b[0-9a-f]{64}\b", log), "a signature-like hex string reached the log"
    assert "Signature=" not in log or "Signature=****" in log


def test_proxy_path_never_imports_the_mcp_sdk_or_botocore(emulator: McpEmulator) -> None:
    lines = [json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json.dumps(call(2, "echo", {"message": "x"}))]  # fmt: skip
    result = subprocess.run(
        [PROXY[0], "-X", "importtime", *PROXY[1:]],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=proxy_env(emulator),
        timeout=60,
    )
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 2
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "sigv4_proxy.mcp.bridge" in imported and "httpx" in imported
    assert not {name for name in imported if name == "mcp" or name.startswith(("mcp.", "mcp_types"))}
    assert not {name for name in imported if name.startswith(("botocore", "pydantic", "anyio.to_thread"))}


def test_stdin_and_stdout_may_be_files_and_lines_are_held_until_initialize_answers(
    emulator: McpEmulator, tmp_path: Path
) -> None:
    """`sigv4-proxy < messages.jsonl > answers.jsonl`: everything is read at once, yet the call waits for the
    session that initialize establishes, and every answer is written before the exit."""
    messages = tmp_path / "in.jsonl"
    answers = tmp_path / "out.jsonl"
    messages.write_text(
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        + "\n" + json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
        + "\n" + json.dumps(call(2, "echo", {"message": "from a file"})) + "\n"
    )  # fmt: skip
    with messages.open("rb") as stdin, answers.open("wb") as stdout:
        result = subprocess.run(
            PROXY, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=proxy_env(emulator), timeout=60
        )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [line["id"] for line in lines] == [1, 2]
    assert lines[1]["result"]["content"][0]["text"] == "from a file"


def test_stdin_from_dev_null_exits_cleanly(emulator: McpEmulator) -> None:
    result = subprocess.run(PROXY, stdin=subprocess.DEVNULL, capture_output=True, env=proxy_env(emulator), timeout=60)
    assert result.returncode == 0 and result.stdout == b""
    assert b"shutting down (stdin closed)" in result.stderr

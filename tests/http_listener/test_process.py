"""`sigv4-proxy http` as a process: start-up lines, a 50 MB response in bounded memory, clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from sigv4_proxy.emulate import McpEmulator

from .processes import spawn_listener

ACCEPT = "application/json, text/event-stream"
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
FIFTY_MIB = 50 * 1024 * 1024


class ListenerProcess:
    def __init__(self, process: subprocess.Popen[str], url: str, lines: list[str]) -> None:
        self.process, self.url, self.lines = process, url, lines

    def peak_rss(self) -> int:
        """VmHWM: the kernel's record of the process's peak resident memory, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(kib) * 1024


@contextmanager
def listener_process(emulator: McpEmulator, *args: str) -> Iterator[ListenerProcess]:
    spawned = spawn_listener({**os.environ, **emulator.env()}, *args)
    process = spawned.process
    try:
        yield ListenerProcess(process, spawned.url, spawned.lines)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for the peak RSS")
def test_50_mib_result_streams_through_in_bounded_memory(emulator: McpEmulator) -> None:
    with listener_process(emulator) as listener, httpx.Client(timeout=120) as http:
        response = http.post(f"{listener.url}/", json=INIT, headers={"accept": ACCEPT})
        headers = {
            "accept": ACCEPT,
            "mcp-session-id": response.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-06-18",
        }
        http.post(f"{listener.url}/", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        before = listener.peak_rss()
        call = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "large", "arguments": {"size_bytes": FIFTY_MIB}},
        }
        received = 0
        head = tail = b""
        with http.stream("POST", f"{listener.url}/", json=call, headers=headers) as stream:
            assert stream.status_code == 200
            for chunk in stream.iter_raw():
                received += len(chunk)
                head = head if len(head) >= 4096 else (head + chunk)[:4096]
                tail = (tail + chunk)[-4096:]
        growth = listener.peak_rss() - before
    assert received > FIFTY_MIB
    assert b'"id":1' in head and b'"result"' in head
    assert tail.rstrip().endswith(b"}")
    # The whole message never sits in the listener's memory: a few chunks and buffers at most.
    assert growth < 16 * 1024 * 1024, f"peak RSS grew by {growth / 2**20:.1f} MiB while streaming 50 MiB"


def test_startup_lines_and_clean_exit_on_sigterm(emulator: McpEmulator) -> None:
    with listener_process(emulator, "--retries", "3") as listener:
        health = httpx.get(f"{listener.url}/healthz").json()
        assert health["status"] == "ok"
        listener.process.send_signal(signal.SIGTERM)
        assert listener.process.wait(15) == 0
    text = "\n".join(listener.lines)
    assert "INFO  sigv4-proxy 0.1.0: HTTP listener starting" in text
    assert f"INFO  Target URL: {emulator.url}" in text
    assert "INFO  Signing: SigV4, region us-east-1 (AWS_REGION), service execute-api (AWS_SERVICE_NAME)" in text
    assert f"INFO  Credentials: access key {emulator.credentials.masked_access_key}, from env" in text
    assert "INFO  Options: retries 3; no timeout" in text
    assert emulator.credentials.secret_access_key not in text


def test_port_in_use_is_a_clear_error(emulator: McpEmulator) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sigv4_proxy", "http", "--listen", f"127.0.0.1:{port}"],
            env={**os.environ, **emulator.env()},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"ERROR: cannot listen on 127.0.0.1:{port}: Address already in use (is another process using the port? "
        "choose another with --listen, or port 0 for a free one)"
    )


def test_credentials_missing_fails_fast_with_the_proxys_message(emulator: McpEmulator, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    env.update({"MCP_TARGET_URL": emulator.url, "AWS_REGION": "us-east-1", "AWS_SERVICE_NAME": "execute-api"})
    result = subprocess.run(
        [sys.executable, "-m", "sigv4_proxy", "http", "--listen", "127.0.0.1:0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("ERROR: failed to load AWS credentials: ")
    assert json.dumps(result.stdout) == '""'

"""Started by hand in a terminal, the proxy says what it waits for and how it is meant to be run (issue 9
item 8): one line after the ready line, only when stdin is a terminal. The proxy runs as a real subprocess
with a pty as its stdin, in front of ``emulate mcp``."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sigv4_proxy.emulate import McpEmulator

from .harness import PROXY, READY, initialize_message, proxy_env, raw_proxy

SIGNING = ["--region", "us-east-1", "--service-name", "execute-api"]  # the emulator's (from the environment)
HINT_START = "stdin is a terminal: sigv4-proxy reads MCP JSON-RPC messages on stdin"


def child_env(emulator: McpEmulator) -> dict[str, str]:
    env = proxy_env(emulator)
    if "PYTHONPATH" in os.environ:  # the same code in the child (runs against a base tree set it)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def log_message(line: str) -> str:
    """A text log line without its timestamp: ``INFO  message``."""
    return line.split(" ", 1)[1]


def stderr_until(stream: Any, pattern: str, timeout: float = 30.0) -> list[str]:
    """stderr's lines up to and including the first that matches ``pattern`` (no sleeps: select on the pipe)."""
    deadline = time.monotonic() + timeout
    buffer, lines = b"", []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], deadline - time.monotonic())
        if not ready:
            break
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            break
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            lines.append(raw.decode())
            if re.search(pattern, lines[-1]):
                return lines
    raise AssertionError(f"no line matching {pattern!r} on stderr:\n" + "\n".join(lines))


def hint_run(emulator: McpEmulator) -> list[str]:
    """Start the proxy with a pty as stdin; its stderr lines up to the hint. Ends it with Ctrl-D."""
    controller, terminal = pty.openpty()
    try:
        with subprocess.Popen(
            PROXY, stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(emulator)
        ) as process:
            assert process.stderr is not None and process.stdout is not None
            try:
                lines = stderr_until(process.stderr, re.escape(HINT_START))
                os.write(controller, b"\x04")  # Ctrl-D: end of input, the proxy's way out
                assert process.wait(timeout=30) == 0
                assert process.stdout.read() == b""  # stdout stays the protocol's: the hint is a log line
            finally:
                if process.poll() is None:
                    process.kill()
    finally:
        os.close(terminal)
        os.close(controller)
    return lines


@pytest.fixture
def hint_lines(emulator: McpEmulator) -> list[str]:
    return hint_run(emulator)


def test_a_terminal_on_stdin_gets_the_hint_after_the_ready_line(emulator: McpEmulator, hint_lines: list[str]) -> None:
    assert log_message(hint_lines[-2]) == f"INFO  {READY}"
    args = ["-m", "sigv4_proxy", "--target-url", emulator.url, *SIGNING]
    snippet = {"mcpServers": {"sigv4-proxy": {"command": sys.executable, "args": args}}}
    initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}'
    assert log_message(hint_lines[-1]) == (
        "INFO  stdin is a terminal: sigv4-proxy reads MCP JSON-RPC messages on stdin, one per line, and is meant to "
        f"be launched by an MCP client. Client configuration: {json.dumps(snippet)}  Test by hand: echo "
        f"'{initialize}' | {shlex.join([sys.executable, *args])}  (Ctrl-D or Ctrl-C ends this run)"
    )


def test_the_hint_s_snippet_and_test_by_hand_work_without_the_shell_s_variables(
    emulator: McpEmulator, hint_lines: list[str]
) -> None:
    """What an MCP client launches from the snippet, and the hint's command line, reach the target with
    nothing from the environment but the credentials."""
    found = re.search(r"Client configuration: (\{.*\})  Test by hand: (.*)  \(Ctrl-D", hint_lines[-1])
    assert found is not None, hint_lines[-1]
    server = json.loads(found.group(1))["mcpServers"]["sigv4-proxy"]
    env = {name: value for name, value in child_env(emulator).items() if not name.startswith(("MCP_", "AWS_RE"))}
    env.pop("AWS_SERVICE_NAME")
    request = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}\n'
    for command in ([server["command"], *server["args"]], ["sh", "-c", found.group(2)]):
        done = subprocess.run(command, input=request, capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.splitlines()[0])["id"] == 1, done.stdout


async def test_no_hint_when_stdin_is_a_pipe(emulator: McpEmulator) -> None:
    async with raw_proxy(emulator, env=child_env(emulator)) as proxy:
        assert "result" in await proxy.request(initialize_message(1))
        assert await proxy.close() == 0
    assert READY in proxy.stderr
    assert HINT_START not in proxy.stderr


def test_the_snippet_names_the_installed_script_by_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started as ``./sigv4-proxy`` (or found on PATH), the snippet's command is that script's absolute path;
    started any other way, the interpreter with ``-m sigv4_proxy``."""
    from sigv4_proxy.mcp.runner import launch_command

    script = tmp_path / "sigv4-proxy"
    script.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    assert launch_command("./sigv4-proxy") == [str(script)]
    assert launch_command(str(tmp_path / "__main__.py")) == [sys.executable, "-m", "sigv4_proxy"]

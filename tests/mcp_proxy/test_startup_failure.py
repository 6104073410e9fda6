"""A proxy that cannot start tells the MCP client why (issue 9 item 2).

Unit tests drive :func:`answer_first_request` in-process over real pipes (and a pty for the terminal case);
end-to-end tests launch ``python -m sigv4_proxy`` under the official MCP SDK client, whose ``initialize``
must fail with the very text the proxy printed after ``ERROR:`` on stderr, and check that the exit code is
what it is without a client.
"""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from sigv4_proxy.mcp.startup_failure import WAIT_ENV, answer_first_request

from .harness import initialize_message, run_cli

MESSAGE = "configuration error: target URL must use http or https scheme, got: ftp\nregion is required"
DATA = {"kind": "configuration", "fix": None, "exit_code": 1}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
GENEROUS = 10.0  # an upper bound for "promptly" that a loaded CI machine still meets


def expected_error(message_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message_id, "error": {"code": -32000, "message": MESSAGE, "data": DATA}}


class Stdin:
    """The read end of a real pipe as the proxy's stdin; the test writes the client's side."""

    def __init__(self) -> None:
        read_fd, self.write_fd = os.pipe()
        self.stream: IO[bytes] = open(read_fd, "rb", buffering=0)  # noqa: SIM115 - closed by close()

    def send(self, *lines: bytes | dict[str, Any] | list[Any]) -> None:
        for line in lines:
            data = line if isinstance(line, bytes) else json.dumps(line).encode()
            os.write(self.write_fd, data + b"\n")

    def end(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def close(self) -> None:
        self.end()
        self.stream.close()


@contextmanager
def pipe_stdin() -> Iterator[Stdin]:
    stdin = Stdin()
    try:
        yield stdin
    finally:
        stdin.close()


class Stdout:
    """The write end of a real pipe as stdout; everything written is collected once the writer is closed."""

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        self.stream: IO[bytes] = open(write_fd, "wb")  # noqa: SIM115 - closed by data()
        self._reader = open(read_fd, "rb")  # noqa: SIM115 - closed by data()

    def data(self) -> bytes:
        self.stream.close()
        with self._reader:
            return self._reader.read()


def answer_to(stdin: IO[bytes], stdout: IO[bytes], wait: float | None = GENEROUS) -> float:
    """Run answer_first_request for a configuration error; how long it took."""
    started = time.monotonic()
    answer_first_request(MESSAGE, kind="configuration", fix=None, exit_code=1, stdin=stdin, stdout=stdout, wait=wait)
    return time.monotonic() - started


def answer(stdin: Stdin, *, wait: float = GENEROUS) -> tuple[bytes, float]:
    """Run answer_first_request over ``stdin``; what it wrote and how long it took."""
    stdout = Stdout()
    elapsed = answer_to(stdin.stream, stdout.stream, wait)
    return stdout.data(), elapsed


# --- in-process -----------------------------------------------------------------------------------------------


def test_a_request_is_answered_with_the_exact_error_line() -> None:
    with pipe_stdin() as stdin:
        stdin.send(INITIALIZE)
        written, elapsed = answer(stdin)
    assert written == (
        b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"configuration error: target URL must use '
        b'http or https scheme, got: ftp\\nregion is required","data":{"kind":"configuration","fix":null,'
        b'"exit_code":1}}}\n'
    )
    assert elapsed < GENEROUS


def test_notifications_responses_and_garbage_are_skipped_until_a_request() -> None:
    with pipe_stdin() as stdin:
        stdin.send(
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 7, "result": {}},
            b"not json at all",
            b'{"id": 3, "method": "no jsonrpc member"}',
            {"jsonrpc": "2.0", "id": "abc", "method": "initialize", "params": {}},
        )
        written, _ = answer(stdin)
    assert [json.loads(line) for line in written.splitlines()] == [expected_error("abc")]


def test_a_request_split_across_writes_is_answered() -> None:
    with pipe_stdin() as stdin:
        line = json.dumps(INITIALIZE).encode()
        threading.Timer(0.05, lambda: stdin.send(line[10:])).start()
        os.write(stdin.write_fd, line[:10])
        written, _ = answer(stdin)
    assert json.loads(written) == expected_error(1)


def test_a_batch_gets_one_array_with_an_error_for_each_request() -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    with pipe_stdin() as stdin:
        stdin.send(batch)
        written, _ = answer(stdin)
    assert written.count(b"\n") == 1
    assert json.loads(written) == [expected_error(1), expected_error(2)]


def test_end_of_input_returns_at_once_with_nothing_written() -> None:
    with pipe_stdin() as stdin:
        stdin.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        stdin.end()
        written, elapsed = answer(stdin, wait=60)
    assert written == b""
    assert elapsed < GENEROUS


def test_silence_ends_the_wait_after_about_wait_seconds() -> None:
    with pipe_stdin() as stdin:  # the client keeps stdin open and says nothing
        written, elapsed = answer(stdin, wait=0.2)
    assert written == b""
    assert 0.15 <= elapsed < GENEROUS


def test_the_environment_sets_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WAIT_ENV, "0.1")
    stdout = Stdout()
    with pipe_stdin() as stdin:
        elapsed = answer_to(stdin.stream, stdout.stream, wait=None)
    assert stdout.data() == b""
    assert elapsed < 4  # well under the default 5 s


def test_a_terminal_on_stdin_returns_at_once() -> None:
    """A person typed the command: stderr said it all, nobody will send a request."""
    controller, terminal = pty.openpty()
    stdout = Stdout()
    try:
        os.write(controller, json.dumps(INITIALIZE).encode() + b"\n")  # even typed input is not read
        with open(terminal, "rb", buffering=0, closefd=False) as stdin:
            elapsed = answer_to(stdin, stdout.stream, wait=60)
    finally:
        os.close(terminal)
        os.close(controller)
    assert stdout.data() == b""
    assert elapsed < GENEROUS


def test_a_client_that_went_away_costs_no_error() -> None:
    """The request came, then the client closed its end of stdout: nothing raises (stderr has the message)."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    with pipe_stdin() as stdin, open(write_fd, "wb") as gone:
        stdin.send(INITIALIZE)
        answer_to(stdin.stream, gone)


def test_a_stdin_without_a_descriptor_returns_at_once() -> None:
    stdout = Stdout()
    elapsed = answer_to(io.BytesIO(json.dumps(INITIALIZE).encode() + b"\n"), stdout.stream, wait=60)
    assert stdout.data() == b""
    assert elapsed < GENEROUS


# --- end to end: the real command under the official MCP SDK client ----------------------------------------

TARGET = ["--target-url", "http://127.0.0.1:9/mcp", "--region", "us-east-1", "--service-name", "execute-api"]
CASES = [
    pytest.param(["--target-url", "ftp://x"], {}, "configuration", 1, id="configuration"),
    pytest.param(TARGET, {"AWS_PROFILE": "nope"}, "credentials", 1, id="credentials"),
    pytest.param(["--target-ulr", "http://127.0.0.1:9/mcp"], {}, "usage", 2, id="mistyped-flag"),
]


@pytest.fixture
def no_aws(tmp_path: Path) -> dict[str, str]:
    """An environment with no AWS credentials anywhere: empty shared files, no keys, no metadata service."""
    (tmp_path / "config").write_text("")
    (tmp_path / "credentials").write_text("")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        WAIT_ENV: "20",  # far longer than any test waits: only the client's request can end it early
    }
    if "PYTHONPATH" in os.environ:  # the same code in the child (runs against a base tree set it)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def error_text(stderr: str) -> str:
    """What follows ``ERROR: `` on stderr, to its end (a configuration error spans several lines)."""
    assert "ERROR: " in stderr, stderr
    return stderr.split("ERROR: ", 1)[1].rstrip("\n")


@pytest.mark.parametrize(("args", "extra_env", "kind", "exit_code"), CASES)
async def test_the_sdk_client_raises_the_stderr_message(
    args: list[str], extra_env: dict[str, str], kind: str, exit_code: int, no_aws: dict[str, str]
) -> None:
    from mcp import ClientSession, MCPError, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {**no_aws, **extra_env}
    alone = run_cli(args, env)
    assert alone.returncode == exit_code, alone.stderr
    assert alone.stdout == ""
    params = StdioServerParameters(command=sys.executable, args=["-m", "sigv4_proxy", *args], env=env)
    started = time.monotonic()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            with pytest.raises(MCPError) as raised:
                await session.initialize()
        errlog.seek(0)
        stderr = errlog.read()
    assert time.monotonic() - started < 15  # answered, not timed out (the proxy would wait 20 s)
    assert raised.value.error.code == -32000
    assert raised.value.error.message == error_text(stderr) == error_text(alone.stderr)
    assert raised.value.error.data["kind"] == kind
    assert raised.value.error.data["exit_code"] == exit_code


@pytest.mark.parametrize(("args", "extra_env", "kind", "exit_code"), CASES)
def test_stdout_carries_one_error_line_and_the_exit_code_is_unchanged(
    args: list[str], extra_env: dict[str, str], kind: str, exit_code: int, no_aws: dict[str, str]
) -> None:
    request = json.dumps(initialize_message(1))
    with subprocess.Popen(
        [sys.executable, "-m", "sigv4_proxy", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**no_aws, **extra_env},
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(request.encode() + b"\n")
        process.stdin.flush()
        line = process.stdout.readline()  # read before the exit, with stdin still open
        out, err = process.communicate(timeout=15)
    assert out == b""
    answer = json.loads(line)
    assert answer["id"] == 1
    assert answer["error"]["message"] == error_text(err.decode())
    assert answer["error"]["data"]["kind"] == kind
    assert process.returncode == exit_code

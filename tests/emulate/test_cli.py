"""`sigv4-proxy emulate mcp` as users run it: a subprocess that prints where and how to connect, logs each
request on stderr, exits 0 on SIGTERM/SIGINT; and its flag checking."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from sigv4_proxy import Credentials, SigV4Auth
from sigv4_proxy.cli import main
from sigv4_proxy.cli.emulate import parse_listen
from sigv4_proxy.errors import UsageError

from .helpers import initialize_body

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@contextmanager
def emulate(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run `sigv4-proxy emulate mcp ARGS`; yields the process and the first stdout line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sigv4_proxy", "emulate", "mcp", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=15)
    return process.returncode, stdout, stderr


def test_json_start_up_line_then_verified_requests_then_clean_exit() -> None:
    with emulate("--json", "--region", "eu-west-1", "--service-name", "lambda") as (process, first):
        info = json.loads(first)
        assert info["url"].startswith("http://127.0.0.1:") and info["url"].endswith("/mcp")
        assert (info["region"], info["service"]) == ("eu-west-1", "lambda")
        assert info["access_key_id"].startswith("AKIA") and len(info["access_key_id"]) == 20
        creds = Credentials(info["access_key_id"], info["secret_access_key"])
        signed = httpx.post(
            info["url"], content=initialize_body(), headers=HEADERS, auth=SigV4Auth(creds, "eu-west-1", "lambda")
        )
        assert signed.status_code == 200, signed.text
        wrong = httpx.post(
            info["url"], content=initialize_body(), headers=HEADERS, auth=SigV4Auth(creds, "eu-west-1", "execute-api")
        )
        assert wrong.json() == {"message": "Credential should be scoped to correct service: 'lambda'. "}
        code, _, stderr = stop(process)
    assert code == 0, stderr
    masked = f"{creds.access_key_id[:4]}****{creds.access_key_id[-4:]}"
    lines = stderr.splitlines()
    assert lines[0].startswith(f"POST /mcp  initialize  {masked}/") and lines[0].endswith(
        "/eu-west-1/lambda/aws4_request  -> signature ok, 200"
    )
    assert lines[1].endswith("/eu-west-1/execute-api/aws4_request  -> 403 InvalidSignatureException (scope_service)")
    assert creds.secret_access_key not in stderr and creds.access_key_id not in stderr


def read_banner(process: subprocess.Popen[str], first: str) -> str:
    """The rest of the banner, read line by line (communicate() would lose what readline() buffered)."""
    assert process.stdout is not None
    lines = [first]
    while "Ctrl-C stops" not in lines[-1]:
        lines.append(process.stdout.readline())
    return "".join(lines)


def test_banner_shows_url_and_the_generated_credentials_and_sigint_exits_0() -> None:
    with emulate("--transport", "sse", "--quiet") as (process, first):
        assert first.startswith("sigv4-proxy emulate mcp: a local IAM-protected MCP endpoint")
        banner = read_banner(process, first)
        code, _, stderr = stop(process, signal.SIGINT)
    assert code == 0, stderr
    assert "  region:   us-east-1\n  service:  execute-api\n" in banner
    assert "backend:  built-in MCP server, legacy HTTP+SSE transport (2024-11-05)" in banner
    assert "generated for this run; they unlock nothing but this emulator" in banner
    assert "    AWS_SECRET_ACCESS_KEY=" in banner
    assert "/sse --region us-east-1 --service-name execute-api" in banner


def test_credentials_given_on_the_command_line_are_not_printed_back() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    args = ("--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--secret-access-key", secret, "--session-token", "tok")
    with emulate(*args) as (process, first):
        banner = read_banner(process, first)
        stop(process)
    assert secret not in banner and "AKIAIOSFODNN7EXAMPLE" not in banner and "tok\n" not in banner
    assert "credentials: the ones you passed (access key AKIA****MPLE with its session token)" in banner


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--access-key-id", "AKIAIOSFODNN7EXAMPLE"], "--access-key-id and --secret-access-key go together"),
        (["--session-token", "t"], "--session-token needs --access-key-id and --secret-access-key"),
        (
            ["--upstream", "http://127.0.0.1:1/mcp", "--stateless", "--transport", "sse"],
            "--transport, --stateless configure the built-in server; they do not apply with --upstream",
        ),
        (["--upstream", "ftp://x/mcp"], "--upstream must be an http:// or https:// URL, got: ftp://x/mcp"),
        (["--transport", "sse", "--json-response"], "--stateless and --json-response apply to --transport"),
        (["--path", "mcp"], "--path must start with /, got: mcp"),
        (["--listen", "127.0.0.1:99999"], "--listen must be HOST:PORT with a port from 0 to 65535"),
    ],
)
def test_flag_problems_are_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "mcp", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and message in err


def test_listen_in_use_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    from sigv4_proxy.emulate.server import bind_socket

    taken = bind_socket("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        assert main(["emulate", "mcp", "--listen", f"127.0.0.1:{port}"]) == 2
    finally:
        taken.close()
    assert capsys.readouterr().err.startswith(f"ERROR: cannot listen on 127.0.0.1:{port}: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8765", ("127.0.0.1", 8765)),
        (":8765", ("127.0.0.1", 8765)),
        ("8765", ("127.0.0.1", 8765)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8765", ("::1", 8765)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["::1:80", "host:", "host:http", "[::1]"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_listen(text)


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["emulate", "mcp", "--help"])
    text = capsys.readouterr().out
    for flag in (
        "--listen",
        "--region",
        "--service-name",
        "--access-key-id",
        "--secret-access-key",
        "--session-token",
        "--upstream",
        "--transport",
        "--stateless",
        "--json-response",
        "--path",
        "--max-skew",
        "--clock-offset",
        "--json",
        "UnrecognizedClientException",
    ):
        assert flag in text

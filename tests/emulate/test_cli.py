"""`sigv4-proxy emulate mcp` as users run it: a subprocess that prints where and how to connect, logs each
request on stderr, exits 0 on SIGTERM/SIGINT; and its flag checking."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from sigv4_proxy import Credentials, SigV4Auth
from sigv4_proxy.cli import build_parser, main
from sigv4_proxy.cli.emulate import build_config, parse_listen
from sigv4_proxy.errors import UsageError

from .helpers import emulate, initialize_body

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


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
        (
            ["--secret-access-key-file", "/nonexistent/key"],
            "cannot read --secret-access-key-file /nonexistent/key: No such file or directory",
        ),
        (["--session-token", "t"], "--session-token needs --access-key-id and --secret-access-key"),
        (
            ["--session-token-file", "/nonexistent/token"],
            "cannot read --session-token-file /nonexistent/token: No such file or directory",
        ),
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
    # A flag carrying a secret also draws its `ps` warning, first; the error follows.
    err = "".join(line for line in capsys.readouterr().err.splitlines(True) if not line.startswith("WARNING: "))
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
        "--secret-access-key-file",
        "SIGV4_PROXY_SECRET_ACCESS_KEY",
        "--session-token",
        "--session-token-file",
        "SIGV4_PROXY_SESSION_TOKEN",
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


# --- the secret key, kept out of the process list -------------------------------------------------------------

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
WARNING = (
    "WARNING: --secret-access-key is visible to other users in the process list (ps); use "
    "--secret-access-key-file PATH, --secret-access-key-file - (stdin) or the SIGV4_PROXY_SECRET_ACCESS_KEY "
    "environment variable instead\n"
)


def accepted_secret(*argv: str) -> str | None:
    """The secret key `emulate mcp ARGV` would accept (None: generated credentials)."""
    config = build_config(build_parser().parse_args(["emulate", "mcp", *argv]))
    return config.credentials[0].secret_access_key if config.credentials else None


def test_secret_key_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"  {SECRET}\n")
    assert accepted_secret("--access-key-id", KEY_ID, "--secret-access-key-file", str(key_file)) == SECRET
    assert capsys.readouterr().err == ""


def test_secret_key_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    assert accepted_secret("--access-key-id", KEY_ID, "--secret-access-key-file", "-") == SECRET
    assert capsys.readouterr().err == ""


def test_secret_key_from_the_environment_only_with_an_access_key_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGV4_PROXY_SECRET_ACCESS_KEY", SECRET)
    assert accepted_secret("--access-key-id", KEY_ID) == SECRET
    assert accepted_secret() is None  # a standing setting does not replace the generated credentials
    assert capsys.readouterr().err == ""


def test_secret_key_on_the_command_line_still_works_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert accepted_secret("--access-key-id", KEY_ID, "--secret-access-key", SECRET) == SECRET
    assert capsys.readouterr().err == WARNING


def test_secret_key_file_and_flag_together_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--access-key-id", KEY_ID, "--secret-access-key", SECRET, "--secret-access-key-file", "-"]
    assert main(["emulate", "mcp", *argv]) == 2
    assert capsys.readouterr().err == (
        "ERROR: give the secret access key once: --secret-access-key or --secret-access-key-file, not both\n"
    )


def test_secret_key_piped_to_the_running_emulator(tmp_path: Path) -> None:
    """End to end: the key comes from stdin, is never printed, and is the one requests must be signed with."""
    (tmp_path / "key").write_text(SECRET + "\n")
    argv = ["--json", "--access-key-id", KEY_ID, "--secret-access-key-file", "-"]
    with (tmp_path / "key").open() as stdin, emulate(*argv, stdin=stdin) as (process, first):
        info = json.loads(first)
        assert info["access_key_id"] == KEY_ID and "secret_access_key" not in info
        signed = httpx.post(
            info["url"],
            content=initialize_body(),
            headers=HEADERS,
            auth=SigV4Auth(Credentials(KEY_ID, SECRET), "us-east-1", "execute-api"),
        )
        assert signed.status_code == 200, signed.text
        code, stdout, stderr = stop(process)
    assert code == 0, stderr
    assert SECRET not in first + stdout + stderr


# --- the session token, kept out of the process list as well ---------------------------------------------------

TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN/session+token=="
TOKEN_WARNING = (
    "WARNING: --session-token is visible to other users in the process list (ps); use "
    "--session-token-file PATH, --session-token-file - (stdin) or the SIGV4_PROXY_SESSION_TOKEN "
    "environment variable instead\n"
)


def accepted_token(*argv: str) -> str | None:
    """The session token `emulate mcp --access-key-id ... ARGV` would require (None: none)."""
    config = build_config(build_parser().parse_args(["emulate", "mcp", *argv]))
    return config.credentials[0].session_token if config.credentials else None


def test_session_token_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"\n{TOKEN}  \n")
    argv = ["--access-key-id", KEY_ID, "--secret-access-key-file", str(tmp_path / "key")]
    (tmp_path / "key").write_text(SECRET)
    assert accepted_token(*argv, "--session-token-file", str(token_file)) == TOKEN
    assert accepted_token(*argv) is None
    assert capsys.readouterr().err == ""


def test_session_token_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "key").write_text(SECRET)
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    argv = ["--access-key-id", KEY_ID, "--secret-access-key-file", str(tmp_path / "key"), "--session-token-file", "-"]
    assert accepted_token(*argv) == TOKEN
    assert capsys.readouterr().err == ""


def test_session_token_from_the_environment_only_with_an_access_key_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGV4_PROXY_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("SIGV4_PROXY_SESSION_TOKEN", TOKEN)
    assert accepted_token("--access-key-id", KEY_ID) == TOKEN
    assert accepted_secret() is None  # a standing setting does not replace the generated credentials
    (tmp_path / "token").write_text("token-from-the-file")
    assert accepted_token("--access-key-id", KEY_ID, "--session-token-file", str(tmp_path / "token")) == (
        "token-from-the-file"  # the flag for this run wins over the standing setting
    )
    assert capsys.readouterr().err == ""


def test_session_token_on_the_command_line_still_works_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGV4_PROXY_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("SIGV4_PROXY_SESSION_TOKEN", "overridden-by-the-flag")
    assert accepted_token("--access-key-id", KEY_ID, "--session-token", TOKEN) == TOKEN
    assert capsys.readouterr().err == TOKEN_WARNING


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--session-token", TOKEN, "--session-token-file", "-"],
            "ERROR: give the session token once: --session-token or --session-token-file, not both\n",
        ),
        (
            ["--secret-access-key-file", "-", "--session-token-file", "-"],
            "ERROR: only one of --secret-access-key-file and --session-token-file can be read from stdin (-)\n",
        ),
    ],
)
def test_session_token_conflicts_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["emulate", "mcp", "--access-key-id", KEY_ID, *argv]) == 2
    assert capsys.readouterr().err == message


def test_session_token_file_that_is_empty_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "token").write_text(" \n")
    argv = ["--access-key-id", KEY_ID, "--secret-access-key", SECRET, "--session-token-file", str(tmp_path / "token")]
    assert main(["emulate", "mcp", *argv]) == 2
    assert capsys.readouterr().err.endswith(
        f"ERROR: --session-token-file {tmp_path / 'token'}: the session token is empty\n"
    )


def test_session_token_piped_to_the_running_emulator(tmp_path: Path) -> None:
    """End to end: the key from the environment, the token from stdin; neither printed; requests must carry
    the token."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    argv = ["--json", "--access-key-id", KEY_ID, "--session-token-file", "-"]
    env = {**os.environ, "SIGV4_PROXY_SECRET_ACCESS_KEY": SECRET}
    with (tmp_path / "token").open() as stdin, emulate(*argv, stdin=stdin, env=env) as (process, first):
        info = json.loads(first)
        assert info["access_key_id"] == KEY_ID and "secret_access_key" not in info
        with_token = httpx.post(
            info["url"],
            content=initialize_body(),
            headers=HEADERS,
            auth=SigV4Auth(Credentials(KEY_ID, SECRET, TOKEN), "us-east-1", "execute-api"),
        )
        assert with_token.status_code == 200, with_token.text
        without = httpx.post(
            info["url"],
            content=initialize_body(),
            headers=HEADERS,
            auth=SigV4Auth(Credentials(KEY_ID, SECRET), "us-east-1", "execute-api"),
        )
        assert without.status_code == 403
        code, stdout, stderr = stop(process)
    assert code == 0, stderr
    output = first + stdout + stderr
    assert TOKEN not in output and SECRET not in output


def test_request_log_escapes_a_hostile_path_and_method() -> None:
    """The emulator logs each request's path (percent-decoded) and JSON-RPC method: shown, never obeyed."""
    with emulate("--json") as (process, first):
        url = json.loads(first)["url"]
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call\x1b[2J\u202e", "params": {"name": "x\x07"}})
        httpx.post(url + "%1b[2J%07%0aFAKE%e2%80%ae", content=body, headers=HEADERS)
        code, _, stderr = stop(process)
    assert code == 0, stderr
    [line] = stderr.splitlines()
    assert line.startswith("POST /mcp\\x1b[2J\\x07\\nFAKE\\u202e ")
    assert not any(char in stderr for char in "\x1b\x07\u202e")

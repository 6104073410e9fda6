"""`sigv4-proxy request` against `emulate mcp` on loopback: signed, streamed, diagnosed."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sigv4_proxy.cli import main
from sigv4_proxy.emulate import McpEmulator
from tests.support.tls import TlsFront, make_pki
from tests.tools.conftest import child_env

INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
    }
)
MCP_HEADERS = ["-H", "Content-Type: application/json", "-H", "Accept: application/json, text/event-stream"]


def request(
    emulator: McpEmulator,
    *argv: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sigv4_proxy",
            "request",
            *argv,
            "--region",
            emulator.region,
            "--service-name",
            emulator.service,
        ]
        if "--service-name" not in argv
        else [sys.executable, "-m", "sigv4_proxy", "request", *argv],
        env=child_env(env if env is not None else emulator.env()),
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def sse_messages(text: str) -> list[dict[str, object]]:
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]


def test_signed_post_streams_the_answer(emulator: McpEmulator) -> None:
    result = request(emulator, "POST", emulator.url, *MCP_HEADERS, "--data", INITIALIZE)
    assert (result.returncode, result.stderr) == (0, "")
    [message] = sse_messages(result.stdout)
    assert message["id"] == 1 and "serverInfo" in message["result"]  # type: ignore[operator]
    assert emulator.requests[-1].verdict == "ok"


def test_include_prints_status_and_headers_first(emulator: McpEmulator) -> None:
    result = request(emulator, "POST", emulator.url, *MCP_HEADERS, "--data", INITIALIZE, "-i")
    head, _, body = result.stdout.partition("\n\n")
    assert head.splitlines()[0] == "HTTP/1.1 200 OK"
    assert "content-type: text/event-stream" in head.splitlines()
    assert sse_messages(body)[0]["id"] == 1


def test_verbose_shows_canonical_request_never_secrets(emulator: McpEmulator) -> None:
    creds = emulator.rotate_credentials(session_token=True, keep_old=True)
    result = request(emulator, "POST", emulator.url, *MCP_HEADERS, "--data", INITIALIZE, "-v", env=emulator.env(creds))
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert f"> POST {emulator.url}\n" in err
    assert "* canonical request:\n*   POST\n*   /mcp\n*   \n*   accept:application/json, text/event-stream\n" in err
    assert "* string to sign:\n*   AWS4-HMAC-SHA256\n" in err
    assert "< HTTP/1.1 200 OK\n" in err
    assert creds.secret_access_key not in err and creds.session_token not in err  # type: ignore[operator]
    assert "x-amz-security-token:<session token: " in err
    assert re.search(r"Signature=\*\*\*\*", err)
    # The only hex digests shown are the body hash and the canonical-request hash: never the signature.
    sts_hash = err.split("* string to sign:\n")[1].splitlines()[3].strip("* ")
    assert set(re.findall(r"\b[0-9a-f]{64}\b", err)) == {hashlib.sha256(INITIALIZE.encode()).hexdigest(), sts_hash}


def test_response_is_streamed_as_it_arrives(emulator: McpEmulator) -> None:
    call = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "progress",
                "arguments": {"steps": 2, "delay_seconds": 1.0},
                "_meta": {"progressToken": "p"},
            },
        }
    )
    argv = [
        sys.executable,
        "-m",
        "sigv4_proxy",
        "request",
        "POST",
        emulator.url,
        *MCP_HEADERS,
        "--data",
        call,
        "--region",
        emulator.region,
        "--service-name",
        emulator.service,
    ]
    with subprocess.Popen(argv, env=child_env(emulator.env()), stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        first = next(line for line in process.stdout if line.startswith("data: "))
        still_running = process.poll() is None  # the tool is still sleeping: the event came out early
        rest = process.stdout.read()
    assert json.loads(first[6:])["method"] == "notifications/progress"
    assert still_running
    assert sse_messages(rest)[-1]["id"] == 2


def test_http_error_exits_1_with_the_diagnosis(emulator: McpEmulator) -> None:
    result = request(
        emulator,
        "POST",
        emulator.url,
        *MCP_HEADERS,
        "--data",
        INITIALIZE,
        "--region",
        emulator.region,
        "--service-name",
        "lambda",
    )
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"message": "Credential should be scoped to correct service: 'execute-api'. "}
    assert result.stderr == (
        "ERROR: HTTP 403 InvalidSignatureException: Credential should be scoped to correct service: 'execute-api'. "
        "Diagnosis: signed for service 'lambda' but the server expects 'execute-api': use --service-name "
        "execute-api\n"
    )


def test_data_from_file_and_stdin(emulator: McpEmulator, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(INITIALIZE)
    assert (
        sse_messages(request(emulator, "POST", emulator.url, *MCP_HEADERS, "--data", f"@{body}").stdout)[0]["id"] == 1
    )
    assert (
        sse_messages(request(emulator, "POST", emulator.url, *MCP_HEADERS, "--data", "@-", stdin=INITIALIZE).stdout)[0][
            "id"
        ]
        == 1
    )


def test_connection_refused(emulator: McpEmulator, closed_port: int) -> None:
    result = request(emulator, "GET", f"http://127.0.0.1:{closed_port}/mcp")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"ERROR: connection to 127.0.0.1:{closed_port} refused. Diagnosis: nothing is listening"
    )


def test_region_and_service_required_for_a_loopback_url(emulator: McpEmulator) -> None:
    result = request(emulator, "GET", emulator.url, "--service-name", "execute-api")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "ERROR: --region required: they cannot be inferred from '127.0.0.1'\n"


def test_unknown_ca_then_cacert(emulator: McpEmulator, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with TlsFront(emulator.port, pki) as front:
        url = front.url()
        refused = request(emulator, "POST", url, *MCP_HEADERS, "--data", INITIALIZE)
        assert refused.returncode == 1
        assert "certificate" in refused.stderr.lower() and refused.stderr.startswith("ERROR: ")
        trusted = request(emulator, "POST", url, *MCP_HEADERS, "--data", INITIALIZE, "--cacert", str(pki.ca_pem))
        assert trusted.returncode == 0, trusted.stderr
        assert sse_messages(trusted.stdout)[0]["id"] == 1
        via_env = request(
            emulator,
            "POST",
            url,
            *MCP_HEADERS,
            "--data",
            INITIALIZE,
            env={**emulator.env(), "SSL_CERT_FILE": str(pki.ca_pem)},
        )
        assert via_env.returncode == 0, via_env.stderr


def test_missing_credentials(emulator: McpEmulator) -> None:
    result = request(emulator, "GET", emulator.url, env={})
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("ERROR: failed to load AWS credentials: ")


@pytest.mark.parametrize("flag", ["--help"])
def test_help(flag: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sigv4_proxy", "request", flag], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "exit status: 0 for HTTP < 400" in result.stdout


LOCAL = "http://127.0.0.1:9/mcp"


@pytest.mark.parametrize(
    ("url", "headers", "message"),
    [
        (
            LOCAL,
            ["X-Name: é"],
            "header X-Name: the value must be ASCII, found 'é' at position 1 (percent-encode or base64 it)",
        ),
        (
            LOCAL,
            ["X-Name: ok\u202eevil"],
            "header X-Name: the value must be ASCII, found '\\u202e' at position 3 (percent-encode or base64 it)",
        ),
        (LOCAL, ["X-Name: a\x01b"], "header X-Name: the value contains the control character \\x01 at position 2"),
        (LOCAL, ["X-Name: a\rb"], "header X-Name: the value contains the control character \\r at position 2"),
        (LOCAL, ["X Name: v"], "header name 'X Name' is not valid: letters, digits and !#$%&'*+-.^_`|~ only"),
        (LOCAL, ["X\x1b[2J: v"], "header name 'X\\x1b[2J' is not valid: letters, digits and !#$%&'*+-.^_`|~ only"),
        (
            "http://127.0.0.1:99999/mcp",
            [],
            "URL port must be a number from 1 to 65535, got: 99999",
        ),
        ("http://127.0.0.1:0/mcp", [], "URL port must be a number from 1 to 65535, got: 0"),
        (
            "http://127.0.0.1:http/mcp",
            [],
            "URL port must be a number from 1 to 65535, got: http",
        ),
        (
            "http://[::1/mcp",
            [],
            "URL has an unclosed '[' in its host, got: [::1 (an IPv6 address goes in brackets: https://[::1]:8080/mcp)",
        ),
        ("http://[::1]:99999/mcp", [], "URL port must be a number from 1 to 65535, got: 99999"),
        (
            "http://::1:8080/mcp",
            [],
            "URL has an IPv6 address without brackets, got: ::1:8080 "
            "(an IPv6 address goes in brackets: https://[::1]:8080/mcp)",
        ),
        (
            "http://127.0.0.1]/mcp",
            [],
            "URL has a bracket outside an IPv6 host, got: 127.0.0.1] (an IPv6 address goes in brackets: https://[::1]:8080/mcp)",
        ),
        ("http:///mcp", [], "URL has no host: http:///mcp"),
        ("ftp://127.0.0.1/mcp", [], "URL must use http or https scheme, got: ftp"),
        (
            "127.0.0.1/mcp",
            [],
            "URL must use http or https scheme, got: 127.0.0.1/mcp (no scheme; write https://127.0.0.1/mcp)",
        ),
        ("http://127.0.0.1/\x1b[2J", [], "URL contains the control character \\x1b, got: http://127.0.0.1/\\x1b[2J"),
    ],
)
def test_bad_input_is_one_usage_error_line(
    url: str, headers: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caught before anything is signed or sent: exit 2 and one line, never a traceback, never a connectivity
    diagnosis (and what is echoed from the input is escaped)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    argv = [
        "request",
        "GET",
        url,
        *(arg for header in headers for arg in ("-H", header)),
        "--region",
        "us-east-1",
        "--service-name",
        "execute-api",
        "--connect-timeout",
        "2",
    ]
    code = main(argv)
    captured = capsys.readouterr()
    assert (code, captured.out, captured.err) == (2, "", f"ERROR: {message}\n")


def test_a_non_ascii_header_value_in_a_subprocess_is_no_traceback(emulator: McpEmulator) -> None:
    result = request(emulator, "GET", emulator.url, "-H", "X-Name: é")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "ERROR: header X-Name: the value must be ASCII, found 'é' at position 1 (percent-encode or base64 it)\n"
    )

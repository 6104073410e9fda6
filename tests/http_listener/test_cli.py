"""`sigv4-proxy http` command line: every configuration problem at once, the proxy's messages, --help."""

from __future__ import annotations

import pytest

from sigv4_proxy.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["http", *args])
    return code, capsys.readouterr().err.splitlines()


def test_all_problems_reported_together_with_the_proxys_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(capsys, "--listen", "nonsense", "--retries", "abc")
    assert code == 1
    assert lines == [
        "ERROR: configuration error: target URL is required (set MCP_TARGET_URL or --target-url)",
        "region is required (set AWS_REGION or --region)",
        "service name is required (set AWS_SERVICE_NAME or --service-name)",
        "listen address must be HOST:PORT, got: nonsense",
        "retries must be a whole number from 0 to 20, got: abc",
    ]


def test_non_loopback_listen_needs_allow_remote(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(
        capsys, "--listen", "0.0.0.0:8080", "--target-url", "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
    )
    assert code == 1
    assert lines == [
        "ERROR: configuration error: listen address 0.0.0.0 is not a loopback address: anyone who can reach it "
        "sends requests signed with your AWS credentials (listen on 127.0.0.1, or pass --allow-remote)"
    ]


def test_bad_port_and_env_retries(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TARGET_URL", "https://abc123.execute-api.us-east-1.amazonaws.com/prod")
    monkeypatch.setenv("MCP_RETRIES", "99")
    monkeypatch.setenv("SIGV4_PROXY_LISTEN", "127.0.0.1:70000")
    code, lines = run(capsys)
    assert code == 1
    assert lines == [
        "ERROR: configuration error: listen port must be a number from 0 to 65535, got: 70000",
        "retries must be a whole number from 0 to 20, got: 99",
    ]


def test_sse_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(capsys, "--sse", "--target-url", "http://127.0.0.1:1/mcp")
    assert code == 2
    assert lines == [
        "ERROR: --sse applies to the stdio proxy: HTTP clients open their own event stream (GET) through the listener"
    ]


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["http", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in (
        "--listen HOST:PORT",
        "SIGV4_PROXY_LISTEN",
        "default 127.0.0.1:8080",
        "--pass-header NAME",
        "--raw-errors",
        "--allow-remote",
        "--retries N",
        "MCP_RETRIES",
        "--target-url",
        "--region",
        "--service-name",
        "--sig-version",
        "--region-set",
        "--profile",
        "--timeout",
        "--headers",
        "--log-level",
        "--log-format",
        "--max-message-bytes",
        "largest request body",
        "/healthz",
    ):
        assert flag in text, flag
    assert "standalone GET event stream" not in text  # --sse is the stdio proxy's; it is hidden here

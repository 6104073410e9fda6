"""`sigv4-proxy http` command line: every configuration problem at once, the proxy's messages, --help."""

from __future__ import annotations

from typing import Any

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


# --- issue 8: who may call, and connection bounds ------------------------------------------------------------


def parse(*args: str) -> tuple[Any, list[str]]:
    import argparse

    from sigv4_proxy.cli.http import _listener_options, configure

    parser = argparse.ArgumentParser()
    configure(parser)
    problems: list[str] = []
    return _listener_options(parser.parse_args(list(args)), problems), problems


def test_security_and_limit_flags_build_the_listener_options() -> None:
    options, problems = parse(
        "--allowed-host",
        "DevBox.local,localhost:9000",
        "--allowed-host",
        "[::1]:9001",
        "--allowed-origin",
        "HTTP://Localhost:6274/",
        "--allowed-origin",
        "null",
        "--header-timeout",
        "2.5",
        "--idle-timeout",
        "1m",
        "--max-connections",
        "7",
        "--max-buffered-bytes",
        "1MiB",
    )
    assert problems == []
    assert options.allowed_hosts == frozenset({"devbox.local", "localhost:9000", "[::1]:9001"})
    assert options.allowed_origins == frozenset({"http://localhost:6274", "null"})
    assert (options.header_timeout, options.idle_timeout) == (2.5, 60.0)
    assert (options.max_connections, options.max_buffered_bytes) == (7, 1024 * 1024)


def test_security_and_limit_defaults() -> None:
    from sigv4_proxy import http_listener
    from sigv4_proxy.cli import http as cli_http

    options, problems = parse()
    assert problems == []
    assert options == http_listener.ListenerOptions()
    # The CLI mirrors the listener's defaults for --help (importing the listener at start-up costs httpx).
    for name in ("DEFAULT_HEADER_TIMEOUT", "DEFAULT_IDLE_TIMEOUT", "DEFAULT_MAX_CONNECTIONS", "BUFFERED_BYTES_FACTOR"):
        assert getattr(cli_http, name) == getattr(http_listener, name), name


def test_bad_security_and_limit_flags_are_reported_together(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(
        capsys,
        "--target-url",
        "https://abc123.execute-api.us-east-1.amazonaws.com/prod",
        "--allowed-host",
        "http://evil.example/",
        "--allowed-origin",
        "http://localhost:6274/path",
        "--header-timeout",
        "0",
        "--idle-timeout",
        "soon",
        "--max-connections",
        "0",
        "--max-buffered-bytes",
        "lots",
    )
    assert code == 1
    assert lines == [
        "ERROR: configuration error: allowed host must be HOST or HOST:PORT (e.g. myhost.local:8080), got: "
        "http://evil.example/",
        "allowed origin must be scheme://host[:port] with no path (e.g. http://localhost:6274), or null, got: "
        "http://localhost:6274/path",
        "--header-timeout must be a positive duration like 10s, 1m or 2.5, got: 0",
        "--idle-timeout must be a positive duration like 10s, 1m or 2.5, got: soon",
        "--max-connections must be a whole number from 1 to 100000, got: 0",
        "--max-buffered-bytes must be a positive size like 268435456 or 256MiB, got: lots",
    ]


def test_help_documents_the_security_and_limit_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["http", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in (
        "--allowed-host HOST[:PORT]",
        "answered 421 (DNS rebinding protection)",
        "--allowed-origin ORIGIN",
        "is answered 403",
        "--header-timeout DURATION",
        "gets 408 and is disconnected (default 10s)",
        "--idle-timeout DURATION",
        "(default 60s)",
        "--max-connections N",
        "gets 503 when every connection has a request in flight (default 100)",
        "--max-buffered-bytes SIZE",
        "(default 4 x --max-message-bytes)",
        "CONNECT, TRACE and HTTP/2 are refused",
    ):
        assert phrase in text, phrase

"""``--transport``, ``--retries``, ``--warm``: help text, environment variables, defaults and messages."""

from __future__ import annotations

import argparse
import subprocess

import pytest

from sigv4_proxy.config import ProxyConfig, add_proxy_arguments, load_proxy_config
from sigv4_proxy.errors import ConfigError
from tests.mcp_proxy.harness import PROXY, proxy_env

BASE = ["--target-url", "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp"]


def load(argv: list[str], env: dict[str, str] | None = None) -> ProxyConfig:
    parser = argparse.ArgumentParser()
    add_proxy_arguments(parser, bridge=True)
    return load_proxy_config(parser.parse_args([*BASE, *argv]), env or {}, bridge=True)


def test_help_documents_the_new_flags_with_variable_and_default() -> None:
    result = subprocess.run([*PROXY, "--help"], capture_output=True, text=True, env=proxy_env(None), timeout=30)
    text = " ".join(result.stdout.split())
    assert "--transport {auto,streamable-http,sse}" in text and "(env MCP_TRANSPORT; default auto)" in text
    assert "--retries N" in text and "(env MCP_RETRIES; default 2)" in text
    assert "--warm, --no-warm" in text and "(env MCP_WARM_START; default off)" in text


def test_defaults_environment_and_flags() -> None:
    config = load([])
    assert (config.transport, config.retries, config.warm) == ("auto", 2, False)
    env = {"MCP_TRANSPORT": "SSE", "MCP_RETRIES": "5", "MCP_WARM_START": "yes"}
    config = load([], env)
    assert (config.transport, config.retries, config.warm) == ("sse", 5, True)
    assert config.sources["transport"] == "MCP_TRANSPORT"
    config = load(["--transport", "streamable-http", "--retries", "0", "--no-warm"], env)  # flags win
    assert (config.transport, config.retries, config.warm) == ("streamable-http", 0, False)


def test_bad_values_are_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        load(["--transport", "websocket", "--retries", "21"], {"MCP_WARM_START": "maybe"})
    assert caught.value.problems == [
        "transport must be 'auto', 'streamable-http' or 'sse', got: websocket",
        "retries must be a whole number from 0 to 20, got: 21",
        "MCP_WARM_START must be true or false, got: maybe",
    ]


def test_other_commands_keep_their_own_flags() -> None:
    """`http` defines its own --retries: its parser and configuration stay as they were (even though the
    top-level parser, which runs the proxy, defines them). `doctor` takes them: tests/tools/test_doctor_flags.py."""
    parser = argparse.ArgumentParser()
    add_proxy_arguments(parser, bridge=True)
    args = parser.parse_args([*BASE, "--retries", "abc"])
    config = load_proxy_config(args, {"MCP_TRANSPORT": "nonsense", "MCP_RETRIES": "x"})
    assert (config.transport, config.retries, config.warm) == ("auto", 2, False)
    result = subprocess.run([*PROXY, "http", "--help"], capture_output=True, text=True, env=proxy_env(None), timeout=30)
    assert "--retries N" in result.stdout and "--transport" not in result.stdout and "--warm" not in result.stdout


# --- --request-deadline ----------------------------------------------------------------------------------------


def test_request_deadline_help_names_variable_default_and_difference_from_timeout() -> None:
    result = subprocess.run([*PROXY, "--help"], capture_output=True, text=True, env=proxy_env(None), timeout=30)
    text = " ".join(result.stdout.split())
    assert "--request-deadline DURATION" in text and "(env MCP_REQUEST_DEADLINE; default off)" in text
    assert "unlike --timeout it also ends a request whose stream keeps delivering" in text
    # the shared limit now names what it bounds on the way back too
    assert "a line on stdin, and from the server a JSON body, an event-stream event or a decompressed body" in text


def test_request_deadline_defaults_off_and_reads_flag_then_environment() -> None:
    assert load([]).request_deadline is None
    config = load([], {"MCP_REQUEST_DEADLINE": "2m"})
    assert (config.request_deadline, config.sources["request_deadline"]) == (120, "MCP_REQUEST_DEADLINE")
    assert load(["--request-deadline", "1.5"], {"MCP_REQUEST_DEADLINE": "2m"}).request_deadline == 1.5
    assert load(["--request-deadline", "0"]).request_deadline is None  # 0 turns it off, like --timeout 0


@pytest.mark.parametrize("value", ["soon", "-5", "1h 30m", "inf"])
def test_bad_request_deadline_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(["--request-deadline", value])
    assert caught.value.problems == [
        f"request deadline must be a duration like 30s, 5m, 1h or plain seconds, got: {value}"
    ]


def test_request_deadline_is_the_stdio_proxys_own() -> None:
    parser = argparse.ArgumentParser()
    add_proxy_arguments(parser, bridge=True)
    args = parser.parse_args([*BASE, "--request-deadline", "5s"])
    assert load_proxy_config(args, {}).request_deadline is None  # other doors keep the default
    result = subprocess.run([*PROXY, "http", "--help"], capture_output=True, text=True, env=proxy_env(None), timeout=30)
    assert "--request-deadline" not in result.stdout

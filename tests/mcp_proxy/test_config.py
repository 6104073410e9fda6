"""Configuration: every published message, flag-over-env precedence, parsing of every value type."""

from __future__ import annotations

import argparse
import subprocess

import pytest

from sigv4_proxy.config import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ProxyConfig,
    add_proxy_arguments,
    load_proxy_config,
    parse_duration,
    parse_headers,
    parse_size,
    url_problem,
)
from sigv4_proxy.errors import ConfigError

from .harness import PROXY, proxy_env

API = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_proxy_arguments(parser)
    return parser.parse_args(argv)


def load(argv: list[str], env: dict[str, str] | None = None) -> ProxyConfig:
    return load_proxy_config(parse(argv), env or {})


def problems(argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(argv, env)
    return caught.value.problems


# --- the published messages --------------------------------------------------------------------------------


def test_missing_target_url_reports_every_problem_at_once() -> None:
    assert problems([]) == [
        "target URL is required (set MCP_TARGET_URL or --target-url)",
        "region is required (set AWS_REGION or --region)",
        "service name is required (set AWS_SERVICE_NAME or --service-name)",
    ]


def test_ftp_scheme() -> None:
    assert problems(["--target-url", "ftp://abc123.execute-api.us-east-1.amazonaws.com"]) == [
        "target URL must use http or https scheme, got: ftp",
        "region is required (set AWS_REGION or --region)",
        "service name is required (set AWS_SERVICE_NAME or --service-name)",
    ]


def test_signature_version_message_is_the_real_one_not_the_guides() -> None:
    assert problems(["--target-url", API, "--sig-version", "v5"]) == [
        "signature version must be 'v4' or 'v4a', got: v5"
    ]
    assert problems(["--target-url", API], {"AWS_SIG_VERSION": "sigv2"}) == [
        "signature version must be 'v4' or 'v4a', got: sigv2"
    ]


def test_custom_domain_needs_region_and_service_with_a_hint_each() -> None:
    assert problems(["--target-url", "https://mcp.example.com/mcp"]) == [
        "region is required (set AWS_REGION or --region)",
        "  (region cannot be inferred from host mcp.example.com: not an AWS endpoint name (a custom domain))",
        "service name is required (set AWS_SERVICE_NAME or --service-name)",
        "  (service name cannot be inferred from host mcp.example.com: not an AWS endpoint name (a custom domain))",
    ]


def test_loopback_hint() -> None:
    assert problems(["--target-url", "http://127.0.0.1:8080/mcp", "--region", "us-east-1"]) == [
        "service name is required (set AWS_SERVICE_NAME or --service-name)",
        "  (service name cannot be inferred from host 127.0.0.1: a loopback address)",
    ]


def test_global_endpoint_hint_names_us_east_1() -> None:
    assert problems(["--target-url", "https://sts.amazonaws.com/"]) == [
        "region is required (set AWS_REGION or --region)",
        "  (region cannot be inferred from host sts.amazonaws.com: a global sts endpoint; its signing region is "
        "usually us-east-1)",
    ]


def test_cli_prints_error_lines_exactly_and_exits_1() -> None:
    env = proxy_env(None)
    result = subprocess.run(
        [*PROXY, "--target-url", "ftp://abc123.execute-api.us-east-1.amazonaws.com", "--sig-version", "v5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "ERROR: configuration error: target URL must use http or https scheme, got: ftp",
        "region is required (set AWS_REGION or --region)",
        "service name is required (set AWS_SERVICE_NAME or --service-name)",
        "signature version must be 'v4' or 'v4a', got: v5",
    ]


def test_cli_target_url_required_line() -> None:
    result = subprocess.run(
        [*PROXY, "--region", "us-east-1", "--service-name", "execute-api"],
        capture_output=True,
        text=True,
        env=proxy_env(None),
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "ERROR: configuration error: target URL is required (set MCP_TARGET_URL or --target-url)"
    ]


def test_cli_credentials_failure_message(tmp_path: object) -> None:
    env = proxy_env(None, {"MCP_TARGET_URL": API})
    result = subprocess.run(PROXY, capture_output=True, text=True, env=env, timeout=60, input="")
    assert result.returncode == 1
    assert result.stdout == ""
    last = result.stderr.splitlines()[-1]
    assert last.startswith("ERROR: failed to load AWS credentials: ")
    assert last.endswith(
        "(ensure AWS credentials are configured via environment variables, ~/.aws/credentials, or IAM role)"
    )


def test_cli_unknown_profile_fails_with_the_credentials_message() -> None:
    env = proxy_env(None, {"MCP_TARGET_URL": API})
    result = subprocess.run([*PROXY, "--profile", "nope"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert "ERROR: failed to load AWS credentials: " in result.stderr
    assert "nope" in result.stderr


def test_help_documents_every_flag_with_its_variable_and_default() -> None:
    result = subprocess.run([*PROXY, "--help"], capture_output=True, text=True, env=proxy_env(None), timeout=30)
    text = " ".join(result.stdout.split())
    for flag, variable in [
        ("--target-url", "MCP_TARGET_URL"),
        ("--region", "AWS_REGION"),
        ("--service-name", "AWS_SERVICE_NAME"),
        ("--sig-version", "AWS_SIG_VERSION"),
        ("--region-set", "AWS_SIGV4A_SIGNING_REGION_SET"),
        ("--profile", "AWS_PROFILE"),
        ("--sse", "MCP_ENABLE_SSE"),
        ("--timeout", "MCP_TIMEOUT"),
        ("--headers", "MCP_HEADERS"),
        ("--log-level", "MCP_LOG_LEVEL"),
        ("--log-format", "MCP_LOG_FORMAT"),
        ("--max-message-bytes", "MCP_MAX_MESSAGE_BYTES"),
        ("--allow-http", "MCP_ALLOW_HTTP"),
    ]:
        assert flag in text and f"env {variable}" in text, flag
    assert "AWS_DEFAULT_REGION" in text
    assert "default v4" in text and "default info" in text and "default 64MiB" in text


# --- precedence ----------------------------------------------------------------------------------------------


def test_flags_win_over_environment() -> None:
    env = {
        "MCP_TARGET_URL": "https://env.execute-api.eu-west-1.amazonaws.com/mcp",
        "AWS_REGION": "eu-west-1",
        "AWS_SERVICE_NAME": "lambda",
        "AWS_SIG_VERSION": "v4a",
        "AWS_PROFILE": "env-profile",
        "MCP_TIMEOUT": "5s",
        "MCP_HEADERS": "x-env=1",
        "MCP_LOG_LEVEL": "error",
        "MCP_LOG_FORMAT": "json",
        "MCP_ENABLE_SSE": "true",
        "MCP_MAX_MESSAGE_BYTES": "1MiB",
    }
    config = load(
        [
            "--target-url", API, "--region", "us-east-1", "--service-name", "execute-api", "--sig-version", "v4",
            "--profile", "flag-profile", "--timeout", "1m", "--headers", "x-flag=2", "--log-level", "debug",
            "--log-format", "text", "--no-sse", "--max-message-bytes", "2048",
        ],
        env,
    )  # fmt: skip
    assert (config.target_url, config.region, config.service, config.sig_version) == (
        API, "us-east-1", "execute-api", "v4",
    )  # fmt: skip
    assert config.profile == "flag-profile"
    assert config.timeout == 60
    assert config.headers == (("x-flag", "2"),)
    assert (config.log_level, config.log_format, config.sse, config.max_message_bytes) == ("debug", "text", False, 2048)
    assert config.sources["region"] == "--region"


def test_environment_is_used_without_flags() -> None:
    config = load(
        [],
        {
            "MCP_TARGET_URL": "https://mcp.example.com/mcp",
            "AWS_REGION": "eu-west-1",
            "AWS_SERVICE_NAME": "execute-api",
            "MCP_ENABLE_SSE": "yes",
            "MCP_TIMEOUT": "1h30m",
            "MCP_HEADERS": "x-api-key=abc==,x-team=blue",
            "MCP_LOG_LEVEL": "WARN",
        },
    )
    assert config.region == "eu-west-1" and config.sources["region"] == "AWS_REGION"
    assert config.sse is True
    assert config.timeout == 5400
    assert config.headers == (("x-api-key", "abc=="), ("x-team", "blue"))
    assert config.log_level == "warning"


def test_aws_region_wins_over_aws_default_region_and_both_over_inference() -> None:
    env = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "ap-south-1"}
    assert load(["--target-url", API], env).region == "eu-west-1"
    assert load(["--target-url", API], {"AWS_DEFAULT_REGION": "ap-south-1"}).region == "ap-south-1"
    config = load(["--target-url", API])
    assert config.region == "us-east-1" and config.sources["region"] == "inferred from the target URL"
    assert config.service == "execute-api"


def test_explicit_region_that_contradicts_the_host_warns() -> None:
    config = load(["--target-url", API, "--region", "eu-west-1"])
    assert config.region == "eu-west-1"
    assert len(config.warnings) == 1
    assert "differs from us-east-1" in config.warnings[0]


def test_empty_environment_values_count_as_unset() -> None:
    config = load(["--target-url", API], {"AWS_REGION": "", "AWS_SERVICE_NAME": "  ", "MCP_TIMEOUT": ""})
    assert config.region == "us-east-1" and config.service == "execute-api" and config.timeout is None


def test_defaults() -> None:
    config = load(["--target-url", API])
    assert config.sig_version == "v4" and config.region_set is None
    assert config.sse is False and config.timeout is None and config.headers == ()
    assert (config.log_level, config.log_format) == ("info", "text")
    assert config.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES == 64 * 1024 * 1024
    assert config.signing_region == "us-east-1"


# --- v4a region sets -------------------------------------------------------------------------------------------


def test_v4a_region_set_defaults_to_the_region_then_star() -> None:
    assert load(["--target-url", API, "--sig-version", "v4a"]).signing_region == ["us-east-1"]
    config = load(["--target-url", "https://mcp.example.com/", "--sig-version", "V4A", "--service-name", "x"])
    assert config.region is None and config.signing_region == ["*"]


def test_v4a_region_set_from_flag_and_env() -> None:
    config = load(["--target-url", API, "--sig-version", "v4a", "--region-set", "us-east-1, us-west-2"])
    assert config.signing_region == ["us-east-1", "us-west-2"]
    env = {"AWS_SIGV4A_SIGNING_REGION_SET": "*"}
    assert load(["--target-url", API, "--sig-version", "v4a"], env).signing_region == ["*"]


def test_region_set_flag_with_v4_is_an_error_but_the_variable_is_ignored() -> None:
    assert problems(["--target-url", API, "--region-set", "us-east-1"]) == [
        "region set applies only to --sig-version v4a"
    ]
    assert load(["--target-url", API], {"AWS_SIGV4A_SIGNING_REGION_SET": "*"}).region_set is None


# --- URL rules ---------------------------------------------------------------------------------------------------


def test_http_needs_allow_http_off_loopback() -> None:
    assert problems(["--target-url", "http://abc123.execute-api.us-east-1.amazonaws.com/mcp"]) == [
        "target URL uses http for non-loopback host abc123.execute-api.us-east-1.amazonaws.com: signed requests "
        "would travel unencrypted (use https, or pass --allow-http / set MCP_ALLOW_HTTP=true)"
    ]
    url = "http://abc123.execute-api.us-east-1.amazonaws.com/mcp"
    assert load(["--target-url", url, "--allow-http"]).allow_http is True
    assert load(["--target-url", url], {"MCP_ALLOW_HTTP": "1"}).target_url == url
    for loopback in ("http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/x", "http://127.8.0.3/"):
        assert load(["--target-url", loopback, "--region", "r", "--service-name", "s"]).target_url == loopback


def test_url_without_scheme_or_host() -> None:
    assert problems(["--target-url", "abc.example.com/mcp", "--region", "r", "--service-name", "s"]) == [
        "target URL must use http or https scheme, got: abc.example.com/mcp (no scheme; write "
        "https://abc.example.com/mcp)"
    ]
    assert problems(["--target-url", "https:///mcp", "--region", "r", "--service-name", "s"]) == [
        "target URL has no host: https:///mcp"
    ]
    assert problems(["--target-url", "https://h:99999/", "--region", "r", "--service-name", "s"]) == [
        "target URL port must be a number from 1 to 65535, got: 99999"
    ]


IPV6_HINT = "(an IPv6 address goes in brackets: https://[::1]:8080/mcp)"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://h:65536/mcp", "target URL port must be a number from 1 to 65535, got: 65536"),
        ("https://h:0/mcp", "target URL port must be a number from 1 to 65535, got: 0"),
        ("https://h:+80/mcp", "target URL port must be a number from 1 to 65535, got: +80"),
        ("https://h:80:90/mcp", "target URL port must be a number from 1 to 65535, got: 80:90"),
        ("http://[::1]:70000/mcp", "target URL port must be a number from 1 to 65535, got: 70000"),
        ("https://[::1/mcp", f"target URL has an unclosed '[' in its host, got: [::1 {IPV6_HINT}"),
        ("https://user@[::1:8080/mcp", f"target URL has an unclosed '[' in its host, got: [::1:8080 {IPV6_HINT}"),
        ("https://[::1]x/mcp", "target URL may have only :port after the ']' of an IPv6 host, got: [::1]x"),
        ("https://[zz]/mcp", "target URL has an invalid IPv6 address in brackets, got: [zz]"),
        ("https://h]/mcp", f"target URL has a bracket outside an IPv6 host, got: h] {IPV6_HINT}"),
        ("https://::1:8080/mcp", f"target URL has an IPv6 address without brackets, got: ::1:8080 {IPV6_HINT}"),
        (
            "https://exa mple.com/mcp",
            "target URL host must not contain spaces or control characters, got: 'exa mple.com'",
        ),
    ],
)
def test_target_url_host_and_port_problems_are_named_at_start_up(url: str, message: str) -> None:
    """Each of these used to start and then fail every request as if the network were down (or quoted Python)."""
    assert problems(["--target-url", url, "--region", "r", "--service-name", "s"]) == [message]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://[::1/mcp", f"URL has an unclosed '[' in its host, got: [::1 {IPV6_HINT}"),
        ("ftp://h/mcp", "URL must use http or https scheme, got: ftp"),
        ("https://h:0/mcp", "URL port must be a number from 1 to 65535, got: 0"),
        ("https:///mcp", "URL has no host: https:///mcp"),
        ("https://h/mcp", None),
    ],
)
def test_url_problem_is_the_one_url_check_for_every_command(url: str, message: str | None) -> None:
    """The target URL's rules and words, for another command's URL argument (`subject` starts the message)."""
    assert url_problem(url, subject="URL") == message


@pytest.mark.parametrize(
    "url", ["https://h:65535/mcp", "https://h:/mcp", "http://[::1]:8080/mcp", "https://[fe80::1%25eth0]:443/mcp"]
)
def test_valid_hosts_and_ports_still_pass(url: str) -> None:
    assert load(["--target-url", url, "--region", "r", "--service-name", "s", "--allow-http"]).target_url == url


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            "x-team=blé",
            "header x-team has a value with a non-ASCII or control character ('é' at position 2): HTTP header values "
            "must be printable ASCII",
        ),
        (
            "x-a=ok,X-Emoji=hi ✓",
            "header X-Emoji has a value with a non-ASCII or control character ('✓' at position 3): HTTP header "
            "values must be printable ASCII",
        ),
        (
            "x-bell=a\x07b",
            "header x-bell has a value with a non-ASCII or control character ('\\x07' at position 1): HTTP header "
            "values must be printable ASCII",
        ),
    ],
)
def test_header_values_http_cannot_carry_are_named_at_start_up(headers: str, message: str) -> None:
    assert problems(["--target-url", API, "--headers", headers]) == [message]
    assert problems(["--target-url", API], {"MCP_HEADERS": headers}) == [message]


def test_header_values_may_hold_tabs_and_any_printable_ascii() -> None:
    assert load(["--target-url", API, "--headers", "x-a=a\tb ~!@#$%^&*()"]).headers == (("x-a", "a\tb ~!@#$%^&*()"),)


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["--target-url", "https://h:65536/mcp"], {}, "target URL port must be a number from 1 to 65535, got: 65536"),
        (
            ["--target-url", "https://[::1/mcp"],
            {},
            f"target URL has an unclosed '[' in its host, got: [::1 {IPV6_HINT}",
        ),
        (
            ["--target-url", "http://127.0.0.1:9/mcp"],
            {"MCP_HEADERS": "x-team=blé"},
            "header x-team has a value with a non-ASCII or control character ('é' at position 2): HTTP header values "
            "must be printable ASCII",
        ),
    ],
)
def test_cli_reports_bad_input_as_one_error_line(args: list[str], env: dict[str, str], line: str) -> None:
    result = subprocess.run(
        [*PROXY, *args, "--region", "us-east-1", "--service-name", "execute-api"],
        capture_output=True,
        text=True,
        env=proxy_env(None, {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x", **env}),
        timeout=30,
        input="",
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [f"ERROR: configuration error: {line}"]


# --- value parsing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m", 60), ("1h30m", 5400), ("45", 45), ("2.5", 2.5), ("250ms", 0.25), ("1.5s", 1.5),
     ("2h", 7200), ("1m30s", 90), (" 10s ", 10), ("0", 0)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5", "s", "1h 30m", "m1", "nan", "inf", "1.2.3s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_bad_timeout_message_and_zero_means_none() -> None:
    assert problems(["--target-url", API, "--timeout", "soon"]) == [
        "timeout must be a duration like 30s, 1m, 1h30m or plain seconds, got: soon"
    ]
    assert load(["--target-url", API, "--timeout", "0"]).timeout is None


def test_parse_headers_values_may_contain_equals() -> None:
    headers, issues = parse_headers("x-api-key=a=b=c, X-Team = blue ,,")
    assert headers == [("x-api-key", "a=b=c"), ("X-Team", "blue")] and issues == []


def test_parse_headers_problems() -> None:
    assert problems(["--target-url", API, "--headers", "novalue,=x,bad name=1,Authorization=AWS4 x,Host=h"]) == [
        "headers must be key=value pairs separated by commas, got: novalue",
        "headers must be key=value pairs separated by commas, got: =x",
        "header name is not a valid HTTP token: 'bad name'",
        "header Authorization is set by the proxy when signing and cannot be overridden in headers",
        "header Host is set by the proxy when signing and cannot be overridden in headers",
    ]


@pytest.mark.parametrize(
    ("text", "size"), [("1024", 1024), ("64MiB", 64 << 20), ("64M", 64 << 20), ("512k", 512 << 10), ("1GB", 1 << 30)]
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_other_value_problems() -> None:
    assert problems(
        ["--target-url", API, "--log-level", "loud", "--log-format", "xml", "--max-message-bytes", "lots"],
        {"MCP_ENABLE_SSE": "maybe"},
    ) == [
        "log level must be one of debug, info, warning, error, got: loud",
        "log format must be 'text' or 'json', got: xml",
        "max message bytes must be a positive size like 67108864 or 64MiB, got: lots",
        "MCP_ENABLE_SSE must be true or false, got: maybe",
    ]

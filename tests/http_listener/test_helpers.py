"""The listener's pure pieces: listen addresses, path mapping, the header allow-list, error-body handling."""

from __future__ import annotations

import gzip
import zlib

import pytest

from sigv4_proxy.http_listener import (
    ascii_header_value as header_safe,
)
from sigv4_proxy.http_listener import (
    decode_for_diagnosis as decoded,
)
from sigv4_proxy.http_listener import (
    forward_request_headers,
    is_jsonrpc_message,
    jsonrpc_methods,
    parse_listen,
    response_headers,
    status_for_failure,
    upstream_url,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9000", ("::1", 9000)),
        (":8081", ("127.0.0.1", 8081)),
        ("8082", ("127.0.0.1", 8082)),
        (" 0.0.0.0:80 ", ("0.0.0.0", 80)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("localhost", "listen address must be HOST:PORT, got: localhost"),
        ("[::1]", "listen address must be HOST:PORT, got: [::1]"),
        ("host:http", "listen port must be a number from 0 to 65535, got: http"),
        ("host:", "listen port must be a number from 0 to 65535, got: (none)"),
        ("host:65536", "listen port must be a number from 0 to 65535, got: 65536"),
    ],
)
def test_parse_listen_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_listen(text)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("target", "request_target", "expected"),
    [
        ("https://h.example/prod/mcp", "/", "https://h.example/prod/mcp"),
        ("https://h.example/prod/mcp", "/?x=1", "https://h.example/prod/mcp?x=1"),
        ("https://h.example/prod/mcp", "/tools?a=b", "https://h.example/prod/mcp/tools?a=b"),
        ("https://h.example/prod/", "/mcp", "https://h.example/prod/mcp"),
        ("https://h.example", "/mcp", "https://h.example/mcp"),
        ("https://h.example:8443/base?key=1", "/x?y=2", "https://h.example:8443/base/x?key=1&y=2"),
        (
            "https://bedrock-agentcore.us-east-1.amazonaws.com",
            "/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123%3Aruntime%2Fr-1/invocations?qualifier=DEFAULT",
            "https://bedrock-agentcore.us-east-1.amazonaws.com/runtimes/"
            "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123%3Aruntime%2Fr-1/invocations?qualifier=DEFAULT",
        ),
    ],
)
def test_upstream_url(target: str, request_target: str, expected: str) -> None:
    assert upstream_url(target, request_target) == expected


def test_request_header_allow_list() -> None:
    kept, dropped = forward_request_headers(
        [
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", "abc"),
            ("MCP-Protocol-Version", "2025-06-18"),
            ("Last-Event-ID", "7"),
            ("Authorization", "Bearer x"),
            ("Cookie", "a=b"),
            ("Host", "127.0.0.1:8080"),
            ("Connection", "keep-alive"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("X-Amz-Target", "DynamoDB_20120810.ListTables"),
            ("X-Amz-Security-Token", "stale"),
            ("X-Amz-Date", "20200101T000000Z"),
            ("X-Custom", "1"),
            ("traceparent", "00-abc-def-01"),
        ]
    )
    assert kept == [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("Mcp-Session-Id", "abc"),
        ("MCP-Protocol-Version", "2025-06-18"),
        ("Last-Event-ID", "7"),
        ("X-Amz-Target", "DynamoDB_20120810.ListTables"),
        ("traceparent", "00-abc-def-01"),
    ]
    assert dropped == [
        "authorization",
        "cookie",
        "host",
        "connection",
        "x-forwarded-for",
        "x-amz-security-token",
        "x-amz-date",
        "x-custom",
    ]


def test_pass_header_extends_the_allow_list_but_never_signing_headers() -> None:
    kept, dropped = forward_request_headers(
        [("X-Custom", "1"), ("Authorization", "x"), ("Transfer-Encoding", "chunked")],
        frozenset({"x-custom", "authorization", "transfer-encoding"}),
    )
    assert kept == [("X-Custom", "1")]
    assert dropped == ["authorization", "transfer-encoding"]


def test_response_headers_drop_hop_by_hop() -> None:
    headers = [
        (b"Content-Type", b"text/event-stream"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Connection", b"keep-alive"),
        (b"mcp-session-id", b"s1"),
        (b"Keep-Alive", b"timeout=5"),
    ]
    assert response_headers(headers) == [(b"Content-Type", b"text/event-stream"), (b"mcp-session-id", b"s1")]


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', "application/json", ["tools/list"]),
        (
            b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"x"}]',
            "application/json",
            ["ping", "x"],
        ),
        (b'{"jsonrpc":"2.0","id":1,"result":{}}', "application/json", None),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', "text/plain", None),
        (b"not json", "application/json", None),
        (b"", "application/json", None),
    ],
)
def test_jsonrpc_methods(body: bytes, content_type: str, expected: list[str] | None) -> None:
    assert jsonrpc_methods(body, content_type) == expected


def test_is_jsonrpc_message() -> None:
    assert is_jsonrpc_message(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"x"}}')
    assert is_jsonrpc_message(b'[{"jsonrpc":"2.0","id":1,"result":{}}]')
    assert not is_jsonrpc_message(b'{"message":"Forbidden"}')
    assert not is_jsonrpc_message(b"[]")
    assert not is_jsonrpc_message(b"<html>")


def test_error_bodies_are_decoded_for_diagnosis() -> None:
    body = b'{"message":"Forbidden"}'
    assert decoded(gzip.compress(body), "gzip") == body
    assert decoded(zlib.compress(body), "deflate") == body
    assert decoded(b"\x00garbage", "gzip") == b"\x00garbage"
    assert decoded(body, "br") == body
    assert decoded(body, None) == body


def test_header_values_are_one_ascii_line() -> None:
    assert header_safe("a …\nb\tc → d") == "a ... b c ? d"
    assert len(header_safe("x" * 5000)) == 2000


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("read_timeout", 504),
        ("connect_timeout", 504),
        ("timeout", 504),
        ("pool_timeout", 504),
        ("credentials", 503),
        ("connection_refused", 502),
        ("dns", 502),
        ("tls_certificate", 502),
        ("connection_reset", 502),
    ],
)
def test_local_status_for_failures_without_an_answer(kind: str, status: int) -> None:
    assert status_for_failure(kind) == status

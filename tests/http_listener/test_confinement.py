"""Issue 8, item 1 as pure functions: whatever the request target, a signed request goes to the target or nowhere.

Only names that existed before the fix are imported, so that on the old code these tests fail by assertion
(the old ``upstream_url`` joined the request target onto the target URL as text). A refusal is a ValueError
(``TargetRefused``).
"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigv4_proxy.http_listener import forward_request_headers, upstream_url

LAMBDA_URL = "https://abc123.lambda-url.us-east-1.on.aws/"

# --- item 1: the upstream URL is the target's, under its path ------------------------------------------------


@pytest.mark.parametrize("target", [LAMBDA_URL, LAMBDA_URL.rstrip("/"), "https://h.example/prod/mcp"])
@pytest.mark.parametrize(
    "request_target",
    [
        "@localhost:18999/",  # userinfo: the old text join made localhost:18999 the host
        "@lambda.us-east-1.amazonaws.com/2015-03-31/functions",  # another AWS host, a valid signing scope
        ".evil.example/x",  # host suffix: <host>.evil.example
        ":8443/x",  # another port
        "http://evil.example/x",  # absolute-form
        "evil.example:443",  # authority-form (CONNECT's)
        "*",  # asterisk-form (OPTIONS *)
        "",
        "x/y",
        "/a#fragment",
        "/a b",
        "/caf\u00e9",
        "/a\x00b",
    ],
)
def test_only_origin_form_targets_are_accepted(target: str, request_target: str) -> None:
    with pytest.raises(ValueError):
        upstream_url(target, request_target)


@pytest.mark.parametrize(
    "request_target",
    [
        "/..",
        "/../admin",
        "/../../admin",
        "/x/../../admin",
        "/%2e%2e/admin",
        "/%2E%2e/%2e%2E/admin",
        "/.%2e/admin",
        "/x/%2e%2e/%2e%2e/admin",
        "/..%2fadmin",  # a server that decodes %2F first sees /../admin
        "/..%2Fadmin",
        "/x%2f..%2f..%2fadmin",
        "/..%5cadmin",  # ... or that treats a backslash as a slash
        "/..\\admin",
        "/%252e%252e/admin",  # double encoding
        "/..;/admin",  # path parameters (Tomcat and friends)
    ],
)
def test_paths_that_climb_out_of_the_target_path_are_refused(request_target: str) -> None:
    with pytest.raises(ValueError) as refused:
        upstream_url("https://h.example/prod/mcp", request_target)
    assert "climb out of the target's path" in str(refused.value)


@pytest.mark.parametrize(
    ("request_target", "expected"),
    [
        ("/x/../y", "https://h.example/prod/mcp/y"),
        ("/x/%2e%2e/y", "https://h.example/prod/mcp/y"),
        ("/./x", "https://h.example/prod/mcp/x"),
        ("/x/..", "https://h.example/prod/mcp"),
        ("/x/y/..", "https://h.example/prod/mcp/x/"),
        ("/x%2f..%2fy", "https://h.example/prod/mcp/x%2f..%2fy"),  # stays inside however it is decoded
        ("/...", "https://h.example/prod/mcp/..."),
        ("/a..b/..c", "https://h.example/prod/mcp/a..b/..c"),
        ("//x", "https://h.example/prod/mcp//x"),  # a path, never an authority
        ("/x//../../y", "https://h.example/prod/mcp/y"),  # an empty segment is a segment (RFC 3986)
        ("/@evil.example:1/x", "https://h.example/prod/mcp/@evil.example:1/x"),
    ],
)
def test_dot_segments_are_resolved_inside_the_target_path(request_target: str, expected: str) -> None:
    url = httpx.URL(upstream_url("https://h.example/prod/mcp", request_target))
    assert str(url) == expected
    assert (url.host, url.port) == ("h.example", None)


def test_encoded_agentcore_path_stays_byte_for_byte() -> None:
    arn = "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fr-1"
    url = httpx.URL(
        upstream_url("https://bedrock-agentcore.us-east-1.amazonaws.com", f"/runtimes/{arn}/invocations?q=DEFAULT")
    )
    assert url.raw_path == f"/runtimes/{arn}/invocations?q=DEFAULT".encode()


TARGETS = [
    "https://h.example/prod/mcp",
    "https://abc123.lambda-url.us-east-1.on.aws/",
    "https://abc123.lambda-url.us-east-1.on.aws",
    "http://127.0.0.1:8080/base/",
    "https://bedrock-agentcore.us-east-1.amazonaws.com/runtimes?x=1",
]
# Pieces that attacks are made of, so that hypothesis finds combinations plain random text would not.
PIECES = [
    "/", "//", ".", "..", "%2e", "%2E%2e", "%2f", "%2F", "%5c", "\\", "%25", "%252e", ";", "@", ":", "?", "#",
    "evil.example", "localhost:18999", "http://", "a", "%3A", "*", " ", "\x00", "é",
]  # fmt: skip
REQUEST_TARGETS = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
    st.lists(st.sampled_from(PIECES), max_size=12).map(lambda parts: "/" + "".join(parts)),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(TARGETS), request_target=REQUEST_TARGETS)
def test_any_request_target_is_refused_or_stays_on_the_target(target: str, request_target: str) -> None:
    """Property: whatever the request target, the URL is refused, or it is the target's scheme, host and port
    with a path under the target's path — also as a server that decodes everything would read it."""
    try:
        url = httpx.URL(upstream_url(target, request_target))
    except (ValueError, httpx.InvalidURL):  # TargetRefused; the old code's text could also be no URL at all
        return
    expected = httpx.URL(target)
    assert (url.scheme, url.host, url.port) == (expected.scheme, expected.host, expected.port)
    base = expected.raw_path.partition(b"?")[0].decode() or "/"
    path = url.raw_path.partition(b"?")[0].decode()
    assert path == base or path.startswith(base.rstrip("/") + "/")
    decoded = unquote(unquote(unquote(path))).replace("\\", "/")
    normalized = posixpath.normpath(decoded)
    assert normalized.startswith(posixpath.normpath(base)), (request_target, str(url))
    assert not url.userinfo
    assert url.fragment == ""


def test_headers_named_by_connection_are_dropped_even_when_allowed() -> None:
    kept, dropped = forward_request_headers(
        [
            ("Connection", "keep-alive, X-Api-Key"),
            ("connection", "mcp-session-id"),
            ("X-Api-Key", "secret"),
            ("Mcp-Session-Id", "s1"),
            ("X-Custom", "1"),
            ("Accept", "*/*"),
        ],
        frozenset({"x-custom"}),
    )
    assert kept == [("X-Custom", "1"), ("Accept", "*/*")]
    assert dropped == ["connection", "connection", "x-api-key", "mcp-session-id"]

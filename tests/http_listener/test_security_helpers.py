"""The listener's new security checks as pure functions: path resolution, the last check before signing,
Host/Origin, request-head refusals, log limits (issue 8). End to end: test_security.py and test_limits.py; the
upstream URL's confinement (including the property test): test_confinement.py.
"""

from __future__ import annotations

import httpx
import pytest

from sigv4_proxy.http_listener import (
    LogLimiter,
    TargetRefused,
    check_request_head,
    check_upstream_url,
    file_limit_target,
    host_allowed,
    normalize_origin,
    origin_allowed,
    resolve_path,
    split_host,
)

# --- item 1: dot segments, and the check that runs right before signing -------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/./b", "/a/b"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/../c", "/a/c"),
        ("/a/%2E/b", "/a/b"),
        ("/a%20b/c", "/a%20b/c"),
    ],
)
def test_resolve_path(path: str, expected: str) -> None:
    assert resolve_path(path) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:18999/prod/mcp",
        "https://evil.example/prod/mcp",
        "https://h.example:8443/prod/mcp",
        "http://h.example/prod/mcp",
        "https://h.example/admin",
        "https://h.example/prod/mcp2",
        "https://user:pw@h.example.evil.example/prod/mcp",
    ],
)
def test_check_upstream_url_refuses_anything_but_the_target(url: str) -> None:
    with pytest.raises(TargetRefused):
        check_upstream_url(httpx.URL(url), httpx.URL("https://h.example/prod/mcp"))


def test_check_upstream_url_accepts_the_target_and_paths_under_it() -> None:
    target = httpx.URL("https://h.example/prod/mcp")
    for url in ("https://h.example/prod/mcp", "https://h.example/prod/mcp/x?y=1", "https://h.example:443/prod/mcp/"):
        check_upstream_url(httpx.URL(url), target)


# --- item 2: Host and Origin ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("localhost", ("localhost", None)),
        ("LocalHost:8080", ("localhost", 8080)),
        ("[::1]:9000", ("[::1]", 9000)),
        ("[::1]", ("[::1]", None)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("", None),
        (":80", None),
        ("::1", None),
        ("[::1", None),
        ("[::1]x", None),
        ("host:port", None),
        ("host:70000", None),
        ("a:1:2", None),
    ],
)
def test_split_host(value: str, expected: tuple[str, int | None] | None) -> None:
    assert split_host(value) == expected


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:8080", "127.0.0.1", "localhost:8080", "LOCALHOST", "[::1]:8080", "[::1]"],
)
def test_local_names_with_no_port_or_the_listen_port_are_allowed(host: str) -> None:
    assert host_allowed(host, "127.0.0.1", 8080)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:8080",  # a DNS-rebinding page: its own name, resolved to 127.0.0.1
        "evil.example",
        "localhost:9999",  # another port: not this listener
        "127.0.0.2:8080",
        "localhost.evil.example:8080",
        "127.0.0.1.evil.example",
        "",
        "127.0.0.1:8080@evil.example",
    ],
)
def test_other_hosts_are_refused(host: str) -> None:
    assert not host_allowed(host, "127.0.0.1", 8080)


def test_the_literal_listen_host_and_allowed_hosts() -> None:
    assert host_allowed("0.0.0.0:8080", "0.0.0.0", 8080)
    assert host_allowed("[fe80::1]:8080", "fe80::1", 8080)
    assert host_allowed("devbox:8080", "0.0.0.0", 8080, frozenset({"devbox"}))
    assert host_allowed("devbox:1234", "0.0.0.0", 8080, frozenset({"devbox"}))  # a bare name: any port
    assert host_allowed("devbox", "0.0.0.0", 8080, frozenset({"devbox"}))
    assert host_allowed("localhost:9000", "127.0.0.1", 8080, frozenset({"localhost:9000"}))  # an ssh -L tunnel
    assert not host_allowed("localhost:9001", "127.0.0.1", 8080, frozenset({"localhost:9000"}))
    assert not host_allowed("devbox.evil.example", "0.0.0.0", 8080, frozenset({"devbox"}))
    assert not host_allowed("192.168.1.5:8080", "0.0.0.0", 8080)  # 0.0.0.0 does not mean "any name"


def test_origins() -> None:
    assert normalize_origin(" HTTP://Localhost:6274/ ") == "http://localhost:6274"
    assert not origin_allowed("http://evil.example")  # none allowed by default
    assert not origin_allowed("null")
    assert not origin_allowed("")
    allowed = frozenset({"http://localhost:6274", "null"})
    assert origin_allowed("http://LOCALHOST:6274", allowed)
    assert origin_allowed("null", allowed)
    assert not origin_allowed("http://localhost:6275", allowed)
    assert not origin_allowed("https://localhost:6274", allowed)


def head(method: str = "GET", target: str = "/", *headers: tuple[str, str]) -> tuple[int, str] | None:
    refusal = check_request_head(
        method,
        target,
        list(headers),
        listen_host="127.0.0.1",
        listen_port=8080,
        allowed_origins=frozenset({"http://localhost:6274"}),
    )
    return None if refusal is None else (refusal.status, refusal.kind)


def test_request_head_checks() -> None:
    local = ("Host", "127.0.0.1:8080")
    assert head("GET", "/", local) is None
    assert head("GET", "/healthz") is None  # HTTP/1.0 without Host: no browser sends that
    assert head("POST", "/", local, ("Origin", "http://localhost:6274")) is None
    assert head("CONNECT", "h:443", ("Host", "h:443")) == (405, "method_refused")
    assert head("TRACE", "/", local) == (405, "method_refused")
    assert head("PRI", "*") == (505, "method_refused")
    assert head("OPTIONS", "*", local) == (400, "bad_request_target")
    assert head("GET", "http://127.0.0.1:8080/", local) == (400, "bad_request_target")
    framing = (("Content-Length", "5"), ("Transfer-Encoding", "chunked"))
    assert head("POST", "/", local, *framing) == (400, "conflicting_framing")
    assert head("GET", "/", ("Host", "evil.example:8080")) == (421, "host_not_allowed")
    assert head("GET", "/healthz", ("Host", "evil.example:8080")) == (421, "host_not_allowed")
    assert head("GET", "/", local, ("Origin", "http://evil.example")) == (403, "origin_not_allowed")
    assert head("GET", "/", local, ("Origin", "null")) == (403, "origin_not_allowed")


def test_refusal_log_lines_name_the_flag() -> None:
    refusal = check_request_head("GET", "/", [("Host", "Evil.Example:8080")], listen_host="127.0.0.1", listen_port=8080)
    assert refusal is not None
    assert refusal.log == (
        "refused Host 'evil.example:8080': not the listen address; allow it with --allowed-host evil.example:8080"
    )
    assert "--allowed-host evil.example:8080" in refusal.message
    refusal = check_request_head(
        "GET", "/", [("Origin", "http://evil.example")], listen_host="127.0.0.1", listen_port=8080
    )
    assert refusal is not None
    assert refusal.log == (
        "refused Origin 'http://evil.example': cross-site requests are refused; allow it with --allowed-origin "
        "http://evil.example"
    )


# --- item 3: hop-by-hop headers, log limits ------------------------------------------------------------------


def test_log_limiter_admits_one_line_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    limiter = LogLimiter(10.0, clock=lambda: now[0])
    assert limiter.admit("accept") == 0
    assert [limiter.admit("accept") for _ in range(500)] == [None] * 500
    assert limiter.admit("timeout") == 0  # kinds are limited separately
    assert limiter.held() == {"accept": 500}
    now[0] = 10.0
    assert limiter.admit("accept") == 500
    assert limiter.held() == {}
    assert limiter.admit("accept") is None


def test_file_limit_target_leaves_room_for_the_connection_cap() -> None:
    assert file_limit_target(256, -1, 100) == 912  # macOS: soft 256, hard unlimited
    assert file_limit_target(256, 10240, 100) == 912
    assert file_limit_target(256, 600, 100) == 600  # never above the hard limit
    assert file_limit_target(256, 256, 100) is None
    assert file_limit_target(1024, 1_048_576, 100) is None  # never lowered
    assert file_limit_target(1024, -1, 1000) == 4512

"""`sigv4-proxy http`: a local plain-HTTP endpoint that signs and forwards every request to the target.

Standard library only at module level (the CLI builds every subcommand's parser at start-up).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.http_listener import ListenerOptions

HELP = "serve a local plain-HTTP endpoint that forwards every request, signed, to the target URL"

DESCRIPTION = """\
Serve a local plain-HTTP endpoint that forwards any method and path to the target URL, signed with
SigV4/SigV4a. Any MCP client that speaks Streamable HTTP, and curl, can then use an IAM-protected endpoint.

  /            is the target URL itself; other paths are appended to the target URL's path
  /healthz     is answered locally (status, target, signing parameters, masked access key)

Response bodies stream (SSE included); request bodies are read completely first, because the signature
covers their SHA-256. Only an allow-list of request headers is forwarded (see sigv4-proxy help http; extend it with
--pass-header). Throttling, 502/503, AgentCore's 424 and connection failures are retried; a request the
server may have started executing is never resent. A final failure is answered with the upstream status and
a JSON body {"error": {...}} that says the cause and the fix (header x-sigv4-proxy-diagnosis: one line).

Requests signed with your credentials only ever go to the target URL, under its path: a request target
that is not a path (http://..., host:port, *), a path whose '..' climbs out, CONNECT, TRACE and HTTP/2 are
refused (400/405/505). So is a Host header that is not this listener (421: DNS rebinding; see
--allowed-host) and any request from a web page, i.e. with an Origin header (403; see --allowed-origin).

The signing flags are the MCP proxy's (same environment variables, same messages)."""

EPILOG = """\
examples:
  sigv4-proxy http --target-url https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp
  curl -s http://127.0.0.1:8080/healthz
  curl -N http://127.0.0.1:8080/ -H 'content-type: application/json' \\
       -H 'accept: application/json, text/event-stream' \\
       -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",
            "capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
  sigv4-proxy http --listen 127.0.0.1:9000 --target-url https://xyz.lambda-url.eu-west-1.on.aws/ --retries 4

Documentation: sigv4-proxy help http."""

LISTEN_ENV = "SIGV4_PROXY_LISTEN"
RETRIES_ENV = "MCP_RETRIES"
# Mirrors of sigv4_proxy.http_listener's defaults: that module imports httpx, too heavy for building the parser.
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS = 100
BUFFERED_BYTES_FACTOR = 4
MAX_CONNECTIONS_LIMIT = 100_000


def configure(parser: argparse.ArgumentParser) -> None:
    from sigv4_proxy.config import add_proxy_arguments

    group = parser.add_argument_group("listener options")
    group.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"address to listen on; port 0 picks a free one (env {LISTEN_ENV}; default 127.0.0.1:8080)",
    )
    group.add_argument(
        "--pass-header",
        metavar="NAME",
        action="append",
        default=[],
        help="also forward this client request header (repeatable, or comma-separated); see sigv4-proxy help http for "
        "the built-in allow-list",
    )
    group.add_argument(
        "--raw-errors",
        action="store_true",
        help="pass upstream error bodies through unchanged (the diagnosis still goes in the "
        "x-sigv4-proxy-diagnosis header and the log)",
    )
    group.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback listen address: anyone who reaches it acts with your AWS credentials",
    )
    group.add_argument(
        "--allowed-host",
        metavar="HOST[:PORT]",
        action="append",
        default=[],
        help="also accept requests whose Host header is HOST (any port) or exactly HOST:PORT (repeatable, or "
        "comma-separated). Accepted without it: localhost, 127.0.0.1, [::1] and the listen host, with no port "
        "or the listen port; any other Host is answered 421 (DNS rebinding protection)",
    )
    group.add_argument(
        "--allowed-origin",
        metavar="ORIGIN",
        action="append",
        default=[],
        help="accept requests that carry this Origin header, e.g. http://localhost:6274 (scheme://host[:port]; "
        "'null' for sandboxed pages; repeatable, or comma-separated). Without it every request with an Origin "
        "header, i.e. from a web page, is answered 403",
    )
    group.add_argument(
        "--header-timeout",
        metavar="DURATION",
        help=f"longest time for a client to send a request's head (request line and headers), e.g. 10s; a "
        f"slower one gets 408 and is disconnected (default {DEFAULT_HEADER_TIMEOUT:g}s)",
    )
    group.add_argument(
        "--idle-timeout",
        metavar="DURATION",
        help=f"close a keep-alive connection after this long without a new request, and a request whose body "
        f"stalls this long, e.g. 60s (default {DEFAULT_IDLE_TIMEOUT:g}s)",
    )
    group.add_argument(
        "--max-connections",
        metavar="N",
        help=f"most client connections open at once; at the limit the connection waiting longest for a request "
        f"is closed to make room, and a new one gets 503 when every connection has a request in flight "
        f"(default {DEFAULT_MAX_CONNECTIONS})",
    )
    group.add_argument(
        "--max-buffered-bytes",
        metavar="SIZE",
        help=f"most request-body bytes held at once across all connections (bodies are read completely before "
        f"they are signed), bytes or 256MiB-style; beyond it a request gets 503 (default "
        f"{BUFFERED_BYTES_FACTOR} x --max-message-bytes)",
    )
    if "--retries" not in parser._option_string_actions:  # the proxy's flags may come to define it
        group.add_argument(
            "--retries",
            metavar="N",
            help=f"retries for throttling, 502/503, 424 and connection failures (env {RETRIES_ENV}; default 2)",
        )
    add_proxy_arguments(parser)
    for action in parser._actions:  # the shared flags, as they apply to the listener
        if "--sse" in action.option_strings:
            action.help = argparse.SUPPRESS  # HTTP clients open their own event stream
        elif "--max-message-bytes" in action.option_strings:
            action.help = (
                "largest request body accepted, bytes or 64MiB-style; larger ones get 413 (env "
                "MCP_MAX_MESSAGE_BYTES; default 64MiB)"
            )


def _listener_options(args: argparse.Namespace, problems: list[str]) -> ListenerOptions:
    from sigv4_proxy.config import retries_setting
    from sigv4_proxy.endpoints import is_loopback
    from sigv4_proxy.http_listener import DEFAULT_LISTEN, ListenerOptions, parse_listen
    from sigv4_proxy.retry import RetryPolicy

    listen = args.listen or os.environ.get(LISTEN_ENV, "").strip() or DEFAULT_LISTEN
    host, port = "127.0.0.1", 8080
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        problems.append(str(exc))
    else:
        if not is_loopback(host) and not args.allow_remote:
            problems.append(
                f"listen address {host} is not a loopback address: anyone who can reach it sends requests signed "
                "with your AWS credentials (listen on 127.0.0.1, or pass --allow-remote)"
            )
    retries = retries_setting(
        getattr(args, "retries", None) or os.environ.get(RETRIES_ENV, "").strip() or None, problems
    )
    names = {part.strip().lower() for item in args.pass_header for part in item.split(",") if part.strip()}
    return ListenerOptions(
        host=host,
        port=port,
        policy=RetryPolicy(retries=retries),
        pass_headers=frozenset(names),
        raw_errors=args.raw_errors,
        allowed_hosts=_allowed_hosts(args.allowed_host, problems),
        allowed_origins=_allowed_origins(args.allowed_origin, problems),
        header_timeout=_duration(args.header_timeout, "--header-timeout", DEFAULT_HEADER_TIMEOUT, problems),
        idle_timeout=_duration(args.idle_timeout, "--idle-timeout", DEFAULT_IDLE_TIMEOUT, problems),
        max_connections=_max_connections(args.max_connections, problems),
        max_buffered_bytes=_max_buffered_bytes(args.max_buffered_bytes, problems),
    )


def _items(values: list[str]) -> list[str]:
    """Repeatable, comma-separated flag values, stripped, empty ones dropped."""
    return [part.strip() for item in values for part in item.split(",") if part.strip()]


def _allowed_hosts(values: list[str], problems: list[str]) -> frozenset[str]:
    from sigv4_proxy.http_listener import split_host

    hosts: set[str] = set()
    for item in _items(values):
        if split_host(item) is None or "/" in item:
            problems.append(f"allowed host must be HOST or HOST:PORT (e.g. myhost.local:8080), got: {item}")
        else:
            hosts.add(item.lower())
    return frozenset(hosts)


def _allowed_origins(values: list[str], problems: list[str]) -> frozenset[str]:
    from urllib.parse import urlsplit

    from sigv4_proxy.http_listener import normalize_origin

    origins: set[str] = set()
    for item in _items(values):
        origin = normalize_origin(item)
        parts = urlsplit(origin)
        if origin != "null" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
            problems.append(
                f"allowed origin must be scheme://host[:port] with no path (e.g. http://localhost:6274), or null, "
                f"got: {item}"
            )
        else:
            origins.add(origin)
    return frozenset(origins)


def _duration(raw: str | None, flag: str, default: float, problems: list[str]) -> float:
    from sigv4_proxy.config import duration_setting

    seconds = duration_setting(raw, f"{flag} must be a positive duration like 10s, 1m or 2.5", problems, zero=False)
    return default if seconds is None else seconds


def _max_connections(raw: str | None, problems: list[str]) -> int:
    if raw is None:
        return DEFAULT_MAX_CONNECTIONS
    if not raw.strip().isdigit() or not 1 <= int(raw) <= MAX_CONNECTIONS_LIMIT:
        problems.append(f"--max-connections must be a whole number from 1 to {MAX_CONNECTIONS_LIMIT}, got: {raw}")
        return DEFAULT_MAX_CONNECTIONS
    return int(raw)


def _max_buffered_bytes(raw: str | None, problems: list[str]) -> int | None:
    from sigv4_proxy.config import parse_size

    if raw is None:
        return None  # BUFFERED_BYTES_FACTOR x --max-message-bytes, decided by the listener
    try:
        return parse_size(raw)
    except ValueError:
        problems.append(f"--max-buffered-bytes must be a positive size like 268435456 or 256MiB, got: {raw}")
        return None


def run(args: argparse.Namespace) -> int:
    from sigv4_proxy.config import load_proxy_config
    from sigv4_proxy.errors import ConfigError, UsageError

    if args.sse:
        raise UsageError(
            "--sse applies to the stdio proxy: HTTP clients open their own event stream (GET) through the listener"
        )
    problems: list[str] = []
    config = None
    try:
        config = load_proxy_config(args, os.environ)
    except ConfigError as exc:
        problems.extend(exc.problems)
    options = _listener_options(args, problems)
    if problems:
        raise ConfigError(problems)
    assert config is not None

    from sigv4_proxy.http_listener import run_http_listener

    return run_http_listener(config, options, os.environ)

"""`sigv4-proxy http`: a local plain-HTTP endpoint that signs and forwards every request to the target.

Standard library only at module level (the CLI builds every subcommand's parser at start-up).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

HELP = "serve a local plain-HTTP endpoint that forwards every request, signed, to the target URL"

DESCRIPTION = """\
Serve a local plain-HTTP endpoint that forwards any method and path to the target URL, signed with
SigV4/SigV4a. Any MCP client that speaks Streamable HTTP, and curl, can then use an IAM-protected endpoint.

  /            is the target URL itself; other paths are appended to the target URL's path
  /healthz     is answered locally (status, target, signing parameters, masked access key)

Response bodies stream (SSE included); request bodies are read completely first, because the signature
covers their SHA-256. Only an allow-list of request headers is forwarded (see docs/http.md; extend it with
--pass-header). Throttling, 502/503, AgentCore's 424 and connection failures are retried; a request the
server may have started executing is never resent. A final failure is answered with the upstream status and
a JSON body {"error": {...}} that says the cause and the fix (header x-sigv4-proxy-diagnosis: one line).

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

Documentation: docs/http.md."""

LISTEN_ENV = "SIGV4_PROXY_LISTEN"
RETRIES_ENV = "MCP_RETRIES"


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
        help="also forward this client request header (repeatable, or comma-separated); see docs/http.md for "
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


def _listener_options(args: argparse.Namespace, problems: list[str]) -> Any:
    from sigv4_proxy.endpoints import is_loopback
    from sigv4_proxy.http_listener import DEFAULT_LISTEN, ListenerOptions, parse_listen
    from sigv4_proxy.retry import DEFAULT_RETRIES, RetryPolicy

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
    raw_retries = getattr(args, "retries", None) or os.environ.get(RETRIES_ENV, "").strip() or str(DEFAULT_RETRIES)
    retries = DEFAULT_RETRIES
    if not str(raw_retries).isdigit() or int(raw_retries) > 20:
        problems.append(f"retries must be a whole number from 0 to 20, got: {raw_retries}")
    else:
        retries = int(raw_retries)
    names = {part.strip().lower() for item in args.pass_header for part in item.split(",") if part.strip()}
    return ListenerOptions(
        host=host,
        port=port,
        policy=RetryPolicy(retries=retries),
        pass_headers=frozenset(names),
        raw_errors=args.raw_errors,
    )


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

"""`sigv4-proxy emulate mcp`: a local IAM-protected MCP endpoint that verifies SigV4 the way AWS does."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from sigv4_proxy.cli.secret_input import SECRET_ACCESS_KEY, SESSION_TOKEN, add_secret_arguments

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.emulate.log import RequestRecord
    from sigv4_proxy.emulate.server import EmulatorConfig, McpEmulatorInfo

HELP = "run a local IAM-protected endpoint that verifies signatures like AWS (emulate mcp)"
DESCRIPTION = """\
Run a local endpoint that verifies every request's SigV4/SigV4a signature the way AWS does and answers
failures the way API Gateway does (403, an x-amzn-ErrorType header, a JSON {"message": ...} body). No AWS
account needed: use it to try sigv4-proxy, to test your own signer, or in tests.
"""
MCP_DESCRIPTION = """\
Serve an IAM-protected MCP endpoint on loopback. Every request must be signed for --region and
--service-name with the credentials it prints (fresh random ones unless you pass your own). Verified
requests go to a built-in MCP server (tools echo, add, progress, sleep, elicit, sample, roots, log,
touch_tools, large, fail; a resource; a prompt), or with --upstream to any MCP server. Each request is
logged on stderr: method, path, masked credential scope, verdict. Never a signature.
"""
MCP_EPILOG = """\
examples:
  sigv4-proxy emulate mcp
  sigv4-proxy emulate mcp --listen 127.0.0.1:8765 --region eu-west-1 --service-name lambda
  sigv4-proxy emulate mcp --transport sse                  # legacy 2024-11-05 HTTP+SSE server
  sigv4-proxy emulate mcp --stateless --json-response      # stateless server, JSON responses
  sigv4-proxy emulate mcp --sigv4a reject                  # a service without SigV4a (most of them)
  sigv4-proxy emulate mcp --upstream http://127.0.0.1:8000/mcp --access-key-id AKIA... --secret-access-key-file key.txt
  pass show emulator-key | sigv4-proxy emulate mcp --access-key-id AKIA... --secret-access-key-file -

errors it answers with (as API Gateway does):
  403 MissingAuthenticationTokenException   no signature at all
  403 IncompleteSignatureException          a malformed or incomplete Authorization header
  403 InvalidSignatureException             wrong signature (the message carries the expected canonical
                                            request and string to sign), expired date, wrong region, wrong
                                            service ("Credential should be scoped to correct service: 's'")
  403 UnrecognizedClientException           unknown access key ("The security token included in the request
                                            is invalid.")
  403 IncompleteSignatureException          an algorithm --sigv4a refuses ("Unsupported AWS 'algorithm':
                                            'AWS4-ECDSA-P256-SHA256' (only AWS4-HMAC-SHA256 for now). ")

The generated credentials are printed on purpose: they are created for this run and unlock nothing but this
emulator. Credentials you pass are not printed back (only the masked access key). Give the secret key with
--secret-access-key-file PATH|- or the SIGV4_PROXY_SECRET_ACCESS_KEY environment variable, and the session
token with --session-token-file PATH|- or SIGV4_PROXY_SESSION_TOKEN (both variables are read only with
--access-key-id): --secret-access-key and --session-token work too, but every user of the machine can read
them in `ps`.
"""
TRANSPORTS = ("streamable-http", "sse")
SIGV4A_CHOICES = ("accept", "require", "reject")  # sigv4_proxy.emulate.state.SIGV4A_POLICIES (not imported: cheap)


def configure(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest="emulate_target", metavar="TARGET", title="targets")
    targets.required = True
    mcp = targets.add_parser(
        "mcp",
        help="an IAM-protected MCP endpoint (Streamable HTTP or legacy SSE)",
        description=MCP_DESCRIPTION,
        epilog=MCP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_mcp(mcp)


def configure_mcp(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="address to listen on; port 0 picks a free port (default: 127.0.0.1:0)",
    )
    parser.add_argument("--region", default="us-east-1", help="region requests must be signed for (default: us-east-1)")
    parser.add_argument(
        "--service-name",
        default="execute-api",
        metavar="NAME",
        help="service requests must be signed for (default: execute-api)",
    )
    parser.add_argument("--access-key-id", metavar="ID", help="accept this access key (default: a random one)")
    add_secret_arguments(parser, SECRET_ACCESS_KEY, "the secret key of --access-key-id (required with it)")
    add_secret_arguments(parser, SESSION_TOKEN, "require this session token with the key")
    parser.add_argument(
        "--upstream",
        metavar="URL",
        help="forward verified requests to this MCP server instead of the built-in one (same path is served)",
    )
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="streamable-http",
        help="built-in server transport: streamable-http (path /mcp) or sse, the legacy 2024-11-05 HTTP+SSE "
        "transport (GET /sse, POST /messages/) (default: streamable-http)",
    )
    parser.add_argument("--path", help="path of the built-in server's endpoint (default: /mcp, or /sse with sse)")
    parser.add_argument(
        "--stateless", action="store_true", help="built-in Streamable HTTP server without sessions (default: stateful)"
    )
    parser.add_argument(
        "--json-response",
        action="store_true",
        help="built-in Streamable HTTP server answers with JSON bodies instead of SSE streams",
    )
    parser.add_argument(
        "--sigv4a",
        choices=SIGV4A_CHOICES,
        default="accept",
        help="SigV4a (AWS4-ECDSA-P256-SHA256) signatures: accept them as well as SigV4 (default), require them "
        "(SigV4 is refused), or reject them (SigV4 only, as API Gateway and most services); a refused algorithm "
        "gets 403 IncompleteSignatureException",
    )
    parser.add_argument(
        "--max-skew",
        type=int,
        default=300,
        metavar="SECONDS",
        help="how far a request's X-Amz-Date may be from the emulator's clock (default: 300, as AWS)",
    )
    parser.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run the emulator's clock this many seconds ahead (negative: behind) to test skew handling",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the start-up information as one JSON line on stdout (for scripts) instead of the banner",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="do not log each request on stderr")


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[::1]:PORT``, ``:PORT`` or ``PORT`` -> (host, port); loopback when no host is given."""
    from sigv4_proxy.errors import UsageError

    text = value.strip()
    host = "127.0.0.1"
    port_text = text
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host_part, _, port_text = text.partition(":")
        host = host_part or host
    elif ":" in text:
        raise UsageError(f"--listen: put an IPv6 address in brackets, e.g. [::1]:8765, got: {value}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"--listen must be HOST:PORT with a port from 0 to 65535, got: {value}")
    return host, int(port_text)


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """Check the flags together and turn them into an :class:`EmulatorConfig` (all problems at once)."""
    import os

    from sigv4_proxy.cli.secret_input import check_one_stdin_reader, read_secret
    from sigv4_proxy.emulate.server import EmulatorConfig
    from sigv4_proxy.errors import UsageError
    from sigv4_proxy.signing.model import Credentials

    host, port = parse_listen(args.listen)
    # The environment variables are standing settings: they must not turn the default (generated credentials)
    # into an error, so they are read only for an --access-key-id.
    check_one_stdin_reader(args, SECRET_ACCESS_KEY, SESSION_TOKEN)
    secret = read_secret(args, os.environ, SECRET_ACCESS_KEY, use_environment=bool(args.access_key_id))
    session_token = read_secret(args, os.environ, SESSION_TOKEN, use_environment=bool(args.access_key_id))
    problems: list[str] = []
    if bool(args.access_key_id) != bool(secret):
        problems.append(
            "--access-key-id and --secret-access-key go together (give the secret key with "
            f"--secret-access-key-file PATH, --secret-access-key-file - or {SECRET_ACCESS_KEY.env})"
        )
    if session_token and not args.access_key_id:
        flag = "--session-token-file" if args.session_token_file is not None else "--session-token"
        problems.append(f"{flag} needs --access-key-id and --secret-access-key")
    if args.upstream is not None:
        if not args.upstream.startswith(("http://", "https://")):
            problems.append(f"--upstream must be an http:// or https:// URL, got: {args.upstream}")
        clashing = [
            flag
            for flag, given in (
                ("--transport", args.transport != "streamable-http"),
                ("--path", args.path is not None),
                ("--stateless", args.stateless),
                ("--json-response", args.json_response),
            )
            if given
        ]
        if clashing:
            problems.append(f"{', '.join(clashing)} configure the built-in server; they do not apply with --upstream")
    elif args.transport == "sse" and (args.stateless or args.json_response):
        problems.append("--stateless and --json-response apply to --transport streamable-http only")
    if args.path is not None and not args.path.startswith("/"):
        problems.append(f"--path must start with /, got: {args.path}")
    if args.max_skew < 0:
        problems.append("--max-skew must be 0 or more seconds")
    if problems:
        raise UsageError("\n".join(problems))
    credentials: tuple[Credentials, ...] = ()
    if args.access_key_id and secret:  # both or neither: checked above
        credentials = (Credentials(args.access_key_id, secret, session_token),)
    return EmulatorConfig(
        host=host,
        port=port,
        region=args.region,
        service=args.service_name,
        credentials=credentials,
        upstream=args.upstream,
        transport=args.transport,
        path=args.path,
        stateless=args.stateless,
        json_response=args.json_response,
        max_skew_seconds=args.max_skew,
        sigv4a=args.sigv4a,
    )


def banner(info: McpEmulatorInfo) -> str:
    """The human start-up text: where to connect and with which credentials."""
    creds = info.credentials
    lines = [
        "sigv4-proxy emulate mcp: a local IAM-protected MCP endpoint",
        f"  URL:      {info.url}",
        f"  region:   {info.region}",
        f"  service:  {info.service}",
        f"  backend:  {info.backend}",
    ]
    if info.sigv4a != "accept":  # the default is not worth a line
        lines.append(f"  signing:  {info.signatures}")
    command = f"sigv4-proxy --target-url {info.url} --region {info.region} --service-name {info.service}"
    if info.generated:
        env = f"AWS_ACCESS_KEY_ID={creds.access_key_id} AWS_SECRET_ACCESS_KEY={creds.secret_access_key}"
        lines.append("  credentials (generated for this run; they unlock nothing but this emulator):")
        lines.append(f"    AWS_ACCESS_KEY_ID={creds.access_key_id}")
        lines.append(f"    AWS_SECRET_ACCESS_KEY={creds.secret_access_key}")
        lines.append("Reach it through the proxy:")
        lines.append(f"  {env} {command}")
    else:
        token = " with its session token" if creds.session_token else ""
        lines.append(f"  credentials: the ones you passed (access key {creds.masked_access_key}{token})")
        lines.append("Reach it through the proxy, with those credentials in the environment:")
        lines.append(f"  {command}")
    lines.append("Every request is verified and logged on stderr. Ctrl-C stops.")
    return "\n".join(lines)


def info_json(info: McpEmulatorInfo) -> str:
    creds = info.credentials
    data = {
        "url": info.url,
        "region": info.region,
        "service": info.service,
        "backend": info.backend,
        "signatures": info.signatures,
        "access_key_id": creds.access_key_id,
    }
    if info.generated:
        data["secret_access_key"] = creds.secret_access_key
    return json.dumps(data)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from sigv4_proxy.emulate.server import serve_forever
    from sigv4_proxy.endpoints import is_loopback
    from sigv4_proxy.terminal import printable

    config = build_config(args)
    if not is_loopback(config.host):
        print(
            f"WARNING: listening on {config.host}, not loopback: anyone who can reach it and has the printed "
            "credentials can use it",
            file=sys.stderr,
        )

    def on_ready(info: McpEmulatorInfo) -> None:
        print(info_json(info) if args.json else printable(banner(info), layout=True), flush=True)

    def on_record(record: RequestRecord) -> None:
        # The path and the JSON-RPC method come from whoever sent the request: shown, never obeyed.
        print(printable(record.line()), file=sys.stderr, flush=True)

    try:
        asyncio.run(
            serve_forever(
                config,
                on_ready=on_ready,
                on_record=None if args.quiet else on_record,
                clock_offset=args.clock_offset,
            )
        )
    except OSError as exc:
        from sigv4_proxy.errors import UsageError

        raise UsageError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from exc
    return 0

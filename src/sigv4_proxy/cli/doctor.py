"""`sigv4-proxy doctor`: check a proxy configuration end to end, one ✓/✗ line per step, with the fix."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "check the proxy's configuration, credentials, network, TLS, clock and a signed probe, with fixes"
DESCRIPTION = """\
Run the troubleshooting guide's checks in one go, with exactly the flags and environment variables the proxy
reads (same rules, same messages). Each check prints one line — ✓ passed, ✗ failed (with the fix), ! warning,
- skipped (with the reason):

  configuration     the proxy's own validation (target URL, region, service, signature version, ...)
  region/service    where each came from, and whether the target's host agrees
  credentials       the source (environment, profile, SSO, role, credential_process, IMDS, container) and expiry
  caller identity   STS GetCallerIdentity (skipped with a note when STS is unreachable)
  DNS, TCP, TLS     name resolution, connection, certificate and SNI (SSL_CERT_FILE is honoured, as by the proxy)
  clock             the local clock against the target's Date header (AWS allows 5 minutes)
  signed probe      one signed MCP initialize, the AWS error decoded; for an Aurora DSQL host, a PostgreSQL
                    connection with a fresh token (when psycopg is installed)
"""
EPILOG = """\
examples:
  sigv4-proxy doctor --target-url https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp
  MCP_TARGET_URL=https://abc.lambda-url.eu-west-1.on.aws/mcp AWS_PROFILE=dev sigv4-proxy doctor --json

exit status: 0 when every check passed (skips and warnings allowed), 1 otherwise.
Nothing secret is printed: access keys are masked, tokens and signatures never shown.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from sigv4_proxy.config import add_proxy_arguments

    add_proxy_arguments(parser)
    group = parser.add_argument_group("doctor options")
    group.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    group.add_argument(
        "--check-timeout", type=float, default=5.0, metavar="SECONDS",
        help="time allowed for each network check (default: 5)",
    )
    group.add_argument(
        "--sts-endpoint", metavar="URL",
        help="STS endpoint for the caller-identity check (default: https://sts.<region>.amazonaws.com/; "
        "e.g. an STS VPC endpoint)",
    )
    group.add_argument("--db-user", default="admin", metavar="NAME",
                       help="database user for the Aurora DSQL connection probe (default: admin)")


def run(args: argparse.Namespace) -> int:
    import json

    from sigv4_proxy.doctor import run_doctor

    report = run_doctor(args, os.environ, sts_endpoint=args.sts_endpoint, timeout=args.check_timeout,
                        db_user=args.db_user)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.render() + "\n")
    return 0 if report.ok else 1

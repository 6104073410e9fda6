"""`sigv4-proxy dsql-token`: an Aurora DSQL authentication token (the password for psql & co)."""

from __future__ import annotations

import argparse
import sys

from sigv4_proxy.cli._common import add_presign_arguments

HELP = "generate an Aurora DSQL IAM authentication token (use it as the PostgreSQL password)"
DESCRIPTION = """\
Generate an Aurora DSQL authentication token: a SigV4 presigned 'DbConnect' (or 'DbConnectAdmin') request
for the cluster host, printed on stdout without the https:// prefix, ready to use as the PostgreSQL password.
The region is inferred from <cluster-id>.dsql.<region>.on.aws; credentials come from the AWS chain
(environment variables, --profile, SSO, roles, ...). Nothing is sent anywhere: the token is computed locally.
"""
EPILOG = """\
examples:
  # connect as admin
  PGPASSWORD="$(sigv4-proxy dsql-token --hostname abc123.dsql.us-east-1.on.aws --admin)" \\
      psql "host=abc123.dsql.us-east-1.on.aws user=admin dbname=postgres sslmode=require"

  # a custom database role (DbConnect), valid for one hour
  sigv4-proxy dsql-token --hostname abc123.dsql.us-east-1.on.aws --expires-in 3600

  # through an interface VPC endpoint: sign for the cluster host, connect to the endpoint
  sigv4-proxy dsql-token --hostname vpce-0123-abcd.dsql.us-east-1.vpce.amazonaws.com \\
      --cluster-host abc123.dsql.us-east-1.on.aws

The token is a credential: keep it out of logs and shell history (use it via $(...) as above).
A token that is rejected? `sigv4-proxy inspect TOKEN --user admin --verify` says why.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hostname", required=True, metavar="HOST", help="the cluster endpoint, e.g. abc123.dsql.us-east-1.on.aws"
    )
    parser.add_argument("--region", help="the cluster's region (default: inferred from the host name)")
    parser.add_argument(
        "--admin",
        action="store_true",
        help="sign DbConnectAdmin, for the 'admin' role (default: DbConnect, for custom database roles)",
    )
    add_token_arguments(parser)
    parser.add_argument(
        "--cluster-host",
        metavar="HOST",
        help="sign for this cluster host instead of --hostname (when --hostname is an interface VPC endpoint)",
    )


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by dsql-token and rds-token."""
    lifetime_help = "token lifetime in seconds, 1..604800 (default: 900); checked only when a connection opens"
    add_presign_arguments(parser, lifetime_help=lifetime_help)
    parser.add_argument("--profile", help="AWS profile to take credentials from (default: the standard chain)")


def signed_host(hostname: str, cluster_host: str | None) -> str:
    """The host to sign: --cluster-host when given; a VPC endpoint host alone is an error with the fix."""
    from sigv4_proxy.errors import UsageError
    from sigv4_proxy.tokens import host_info

    if cluster_host:
        return cluster_host
    info = host_info(hostname.split(":")[0].split("//")[-1])
    if info.kind == "vpce":
        region = info.region or "<region>"
        raise UsageError(
            f"{hostname} is an interface VPC endpoint; Aurora DSQL checks the token against the cluster's own "
            f"host name: add --cluster-host <cluster-id>.dsql.{region}.on.aws (and keep connecting to the endpoint)"
        )
    return hostname


def run(args: argparse.Namespace) -> int:
    from sigv4_proxy.cli._common import parse_timestamp
    from sigv4_proxy.credentials import CredentialProvider
    from sigv4_proxy.tokens import dsql_token

    host = signed_host(args.hostname, args.cluster_host)
    now = parse_timestamp(args.timestamp)
    credentials = CredentialProvider(args.profile).get()
    token = dsql_token(
        host, args.region, admin=args.admin, expires_in=args.expires_in, credentials=credentials, now=now
    )
    sys.stdout.write(token + "\n")
    return 0

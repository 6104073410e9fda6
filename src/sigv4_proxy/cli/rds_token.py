"""`sigv4-proxy rds-token`: an RDS / Aurora IAM database authentication token."""

from __future__ import annotations

import argparse
import sys

from sigv4_proxy.cli.dsql_token import add_token_arguments

HELP = "generate an RDS / Aurora IAM database authentication token (use it as the password)"
DESCRIPTION = """\
Generate an RDS IAM authentication token for a database user: a SigV4 presigned 'connect' request for
host:port (service rds-db), printed on stdout without the https:// prefix. The region is inferred from
<name>.<id>.<region>.rds.amazonaws.com; credentials come from the AWS chain. Computed locally.
"""
EPILOG = """\
examples:
  PGPASSWORD="$(sigv4-proxy rds-token --hostname mydb.abc123.us-east-1.rds.amazonaws.com \\
      --port 5432 --username iam_user)" psql "host=mydb.abc123.us-east-1.rds.amazonaws.com \\
      user=iam_user dbname=postgres sslmode=require"

  mysql --enable-cleartext-plugin --ssl-mode=REQUIRED -h mydb.abc123.us-east-1.rds.amazonaws.com \\
      -u iam_user --password="$(sigv4-proxy rds-token --hostname mydb.abc123.us-east-1.rds.amazonaws.com:3306 \\
      --username iam_user)"

RDS checks IAM tokens for 15 minutes whatever --expires-in says. A rejected token?
`sigv4-proxy inspect TOKEN --user iam_user --verify` says why.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hostname",
        required=True,
        metavar="HOST[:PORT]",
        help="the DB instance, cluster or proxy endpoint (a :PORT suffix may replace --port)",
    )
    parser.add_argument("--port", type=int, help="the port your client connects to (5432 PostgreSQL, 3306 MySQL)")
    parser.add_argument("--username", required=True, help="the database user (with IAM authentication enabled)")
    parser.add_argument("--region", help="the database's region (default: inferred from the host name)")
    add_token_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from sigv4_proxy.cli._common import parse_timestamp
    from sigv4_proxy.credentials import CredentialProvider
    from sigv4_proxy.errors import UsageError
    from sigv4_proxy.tokens import rds_token, split_host

    port = args.port
    if port is None:
        port = split_host(args.hostname).port
        if port is None:
            raise UsageError(
                "--port is required (the port your client connects to: 5432 for PostgreSQL, 3306 for MySQL), "
                "or give it as --hostname HOST:PORT"
            )
    now = parse_timestamp(args.timestamp)
    credentials = CredentialProvider(args.profile).get()
    token = rds_token(
        args.hostname, port, args.username, args.region, expires_in=args.expires_in, credentials=credentials, now=now
    )
    sys.stdout.write(token + "\n")
    return 0

"""What several subcommands share: the flags of a request to sign, and turning them into headers, a body, a
moment and a signing scope.

`sign` and `request` sign a request of their own (:func:`add_request_arguments`, :func:`add_signing_arguments`,
:func:`resolve_scope`); `inspect` reads headers and a body the same way (:func:`parse_header_args`,
:func:`read_body`); `sign`, `dsql-token` and `rds-token` presign (:func:`add_presign_arguments`), and they and
`inspect` take a moment (:func:`parse_timestamp`).

Standard library only at module level, like every ``sigv4_proxy.cli`` module: the CLI builds every subcommand's
parser at start-up.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from datetime import datetime

__all__ = [
    "add_presign_arguments",
    "add_request_arguments",
    "add_signing_arguments",
    "parse_header_args",
    "parse_timestamp",
    "read_body",
    "resolve_scope",
]


def add_request_arguments(parser: argparse.ArgumentParser, *, header_help: str) -> None:
    """``-H/--header`` (repeatable) and ``--data``: the headers and the body of a request to sign."""
    parser.add_argument(
        "-H", "--header", dest="headers", action="append", default=[], metavar="'Name: value'", help=header_help
    )
    parser.add_argument("--data", "-d", metavar="TEXT|@FILE|@-", help="the request body: text, @file, or @- for stdin")


def add_presign_arguments(parser: argparse.ArgumentParser, *, lifetime_help: str) -> None:
    """``--expires-in`` and ``--timestamp``: how long a presigned URL or token is valid, and when it is signed."""
    parser.add_argument("--expires-in", type=int, default=900, metavar="N", help=lifetime_help)
    parser.add_argument(
        "--timestamp",
        metavar="ISO8601",
        help="sign as of this time, e.g. 2015-08-30T12:36:00Z (default: now); makes the output reproducible",
    )


def add_signing_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the commands that sign on their own (sign, request)."""
    parser.add_argument("--region", help="signing region (SigV4a: comma-separated region set); inferred from the URL")
    parser.add_argument("--service-name", help="signing service name, e.g. execute-api, lambda; inferred from the URL")
    parser.add_argument(
        "--sig-version", default="v4", choices=("v4", "v4a"), help="v4 (default) or v4a (multi-region ECDSA)"
    )
    parser.add_argument("--profile", help="AWS profile to take credentials from (default: the standard chain)")


def parse_timestamp(text: str | None) -> datetime | None:
    """``--timestamp`` / ``--now``: ISO 8601 (``2015-08-30T12:36:00Z``) or an X-Amz-Date (``20150830T123600Z``);
    without a zone, UTC. None when not given."""
    from datetime import datetime, timezone

    from sigv4_proxy.errors import UsageError
    from sigv4_proxy.signing.amzdate import parse_amz_date

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        amz_date = parse_amz_date(text)
        if amz_date is None:
            raise UsageError(f"--timestamp must be ISO 8601, e.g. 2015-08-30T12:36:00Z, got: {text}") from None
        return amz_date
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def read_body(data: str | None) -> bytes:
    """``--data``: the text itself, ``@FILE``'s bytes, or stdin's for ``@-``; empty when not given."""
    from pathlib import Path

    from sigv4_proxy.errors import UsageError

    if data is None:
        return b""
    if data == "@-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read --data file {data[1:]}: {exc.strerror}") from None
    return data.encode("utf-8")


def parse_header_args(values: list[str]) -> list[tuple[str, str]]:
    """``-H 'Name: value'`` flags -> (name, value) pairs, stripped."""
    from sigv4_proxy.errors import UsageError

    headers = []
    for value in values:
        name, colon, text = value.partition(":")
        if not colon or not name.strip():
            raise UsageError(f"a header must look like 'Name: value', got: {value!r}")
        headers.append((name.strip(), text.strip()))
    return headers


def resolve_scope(url: str, region: str | None, service: str | None) -> tuple[str | list[str], str]:
    """Region and service from the flags, else inferred from the URL's host; a clear error when neither."""
    from sigv4_proxy import endpoints
    from sigv4_proxy.errors import UsageError

    implied = endpoints.infer(url)
    region = region or implied.region
    service = service or implied.service
    if not region or not service:
        missing = [name for name, value in (("--region", region), ("--service-name", service)) if not value]
        raise UsageError(
            f"{' and '.join(missing)} required: they cannot be inferred from {endpoints.host_of(url) or url!r}"
        )
    regions = [r.strip() for r in region.split(",") if r.strip()]
    return (regions if len(regions) > 1 else regions[0]), service


# A cluster id is the first label of <id>.dsql.<region>.on.aws: DSQL's are 26 lower-case letters and digits, and
# the emulator's host matching (emulate.dsql.auth.ClusterAddress) takes letters and digits only.
_CLUSTER_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def cluster_id_problem(where: str, cluster_id: str) -> str | None:
    """What is wrong with a DSQL cluster id given as ``where`` (a flag or variable), or None."""
    if 0 < len(cluster_id) <= 63 and set(cluster_id) <= _CLUSTER_ID_CHARS:
        return None
    return (
        f"{where} must be 1 to 63 lower-case letters and digits (DSQL's are 26, e.g. abcdefghijklmnopqrstuvwxyz), "
        f"got: {cluster_id}"
    )

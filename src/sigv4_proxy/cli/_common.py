"""What several subcommands share: the flags of a request to sign, and turning them into headers, a body, a
moment and a signing scope.

`sign` and `request` sign a request of their own (:func:`add_request_arguments`, :func:`add_signing_arguments`,
:func:`resolve_scope`); `inspect` reads headers and a body the same way (:func:`parse_header_args`,
:func:`read_body`); `sign`, `dsql-token` and `rds-token` presign (:func:`add_presign_arguments`), and they and
`inspect` take a moment (:func:`parse_timestamp`). `pg` and `loadtest dsql` read every flag or its environment
variable (:class:`FlagsAndEnvironment`).

Standard library only at module level, like every ``sigv4_proxy.cli`` module: the CLI builds every subcommand's
parser at start-up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from datetime import datetime

__all__ = [
    "FlagsAndEnvironment",
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


# RDS endpoint names (tokens.host_info recognises the full shape; a suffix is enough to tell a user "that is RDS").
RDS_SUFFIXES = (".rds.amazonaws.com", ".rds.amazonaws.com.cn")


def host_cluster_id_problem(where: str, cluster_id: str) -> str | None:
    """A --cluster-id beside a hostname (`pg`, `loadtest dsql`): the id alone, in DSQL's alphabet."""
    if ".dsql" in cluster_id:
        return f"{where} takes the id alone, not a host name: {cluster_id.partition('.')[0]}"
    return cluster_id_problem(where, cluster_id)


def cluster_id_mismatch(where: str, cluster_id: str, hostname: str, hostname_where: str) -> str | None:
    """A --cluster-id that names another cluster than the hostname does (only a VPC endpoint's name has none)."""
    from sigv4_proxy.tokens import host_info

    own = host_info(hostname).cluster_id
    if own is None or own == cluster_id:
        return None
    return (
        f"{where} {cluster_id} differs from the cluster of {hostname_where} {hostname} ({own}): drop it (only a "
        "VPC endpoint's hostname needs --cluster-id)"
    )


def host_region_problems(
    settings: FlagsAndEnvironment, where: str, host: str, host_region: str | None, region: str | None, forms: str
) -> list[str]:
    """A region to sign for: --region when the host name carries none (``forms`` says which names do), and no
    --region that contradicts the host's."""
    region_where = settings.value("--region")[1]
    if region is None and host_region is None and settings.value("--region")[0] is None:
        return [
            f"{where} {host} does not say its region ({forms} names do): pass --region (or "
            f"{settings.env_name('--region')})"
        ]
    if region is not None and host_region is not None and region != host_region:
        return [
            f"{region_where} {region} does not match {host}, which is in {host_region}: the token would be refused; "
            f"drop {region_where}"
        ]
    return []


def vpce_cluster_id_problem(where: str, host: str, host_region: str | None) -> str:
    """A DSQL hostname that is an interface VPC endpoint's own name, with no --cluster-id to say which cluster."""
    shown_region = host_region or "REGION"
    return (
        f"{where} {host} is an interface VPC endpoint: Aurora DSQL reads the cluster from the host name, so name it "
        f"with --cluster-id (the first label of CLUSTER-ID.dsql.{shown_region}.on.aws), or connect to the "
        f"endpoint's private DNS name CLUSTER-ID.dsql-SUFFIX.{shown_region}.on.aws instead"
    )


def flag_dest(flag: str) -> str:
    """argparse's destination of ``--flag-name``: flag_name."""
    return flag.removeprefix("--").replace("-", "_")


def flag_env_name(prefix: str, flag: str) -> str:
    """The environment variable of ``--flag-name``: <prefix>FLAG_NAME."""
    return prefix + flag.removeprefix("--").upper().replace("-", "_")


class FlagsAndEnvironment:
    """Each setting flag-first, then its environment variable ``<prefix>FLAG_NAME`` (empty counts as unset), with
    where it came from: messages name the flag or the variable the user actually set."""

    def __init__(
        self, args: argparse.Namespace, environ: Mapping[str, str], prefix: str, switches: frozenset[str] = frozenset()
    ) -> None:
        self.args = args
        self.environ = environ
        self.prefix = prefix
        self.switches = switches  # flags without a value (store_true)

    def env_name(self, flag: str) -> str:
        return flag_env_name(self.prefix, flag)

    def value(self, flag: str) -> tuple[str | None, str]:
        """(raw value or None, the flag or variable it came from)."""
        given = getattr(self.args, flag_dest(flag), None)
        if given is not None and given != "":
            return str(given), flag
        env = self.env_name(flag)
        text = self.environ.get(env, "").strip()
        return (text, env) if text else (None, flag)

    def given(self, flag: str) -> bool:
        """Set at all: a value, or a switch turned on."""
        if flag in self.switches:
            return bool(self.switch_on(flag))
        return self.value(flag)[0] is not None

    def where_given(self, flags: tuple[str, ...]) -> list[str]:
        """The flags (or variables) among ``flags`` that are set, in order, as the user wrote them."""
        return [self.value(flag)[1] for flag in flags if self.given(flag)]

    def items(self, flag: str) -> tuple[list[str], str]:
        """A repeatable, comma-separated setting: every item, stripped, empty ones kept (they pair with another
        list by position); the variable is comma-separated."""
        given = getattr(self.args, flag_dest(flag), None) or []
        if given:
            return [part.strip() for value in given for part in value.split(",")], flag
        env = self.env_name(flag)
        text = self.environ.get(env, "").strip()
        return ([part.strip() for part in text.split(",")], env) if text else ([], flag)

    def switch(self, flag: str, problems: list[str]) -> bool:
        """A flag without a value: given, or its variable true (1/true/yes/on). A variable that is neither true
        nor false is a problem (reported once per call)."""
        on = self.switch_on(flag)
        if on is None:
            raw, where = self.value(flag)
            problems.append(f"{where} must be true or false (1/0, yes/no, on/off), got: {raw}")
        return bool(on)

    def switch_on(self, flag: str) -> bool | None:
        """True or False; None for a variable that is neither."""
        from sigv4_proxy.config import parse_bool

        if getattr(self.args, flag_dest(flag), None) is True:  # the flag itself (store_true)
            return True
        raw, _ = self.value(flag)
        if raw is None:
            return False
        try:
            return parse_bool(raw)
        except ValueError:
            return None

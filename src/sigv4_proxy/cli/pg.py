"""`sigv4-proxy pg`: a local PostgreSQL endpoint that logs in to Aurora DSQL (or RDS with IAM authentication) with
a fresh IAM token per connection, so any PostgreSQL client connects with no password.

Every flag has an environment variable ``SIGV4_PROXY_PG_<FLAG>`` (the flag in upper case, ``-`` as ``_``); a flag
wins over its variable, and an empty variable counts as unset. :func:`build_pg_config` checks them all together
and raises one UsageError listing every problem (exit 2). Standard library only at module level (the CLI builds
every subcommand's parser at start-up).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigv4_proxy.cli._common import (
    RDS_SUFFIXES,
    FlagsAndEnvironment,
    cluster_id_mismatch,
    flag_env_name,
    host_cluster_id_problem,
    host_region_problems,
    vpce_cluster_id_problem,
)

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from sigv4_proxy.pgproxy.config import DatabaseKind, PgProxyConfig, Target

HELP = "serve a local PostgreSQL endpoint that logs in to Aurora DSQL or RDS with IAM: clients need no password"

DESCRIPTION = """\
Serve a local PostgreSQL endpoint for Aurora DSQL (or RDS and Aurora PostgreSQL with IAM authentication), as
cloud-sql-proxy does for Cloud SQL: any PostgreSQL client connects to it with no password, and the proxy logs in
upstream with a fresh IAM token per connection (DbConnectAdmin for the user admin, DbConnect for other roles;
an rds-db token for RDS), over TLS with verify-full and SNI. After the login, bytes are relayed untouched.

Each --hostname gets its own local port: --listen's port for the first, counting up for the next ones, unless
given as HOST=LOCALPORT. Clients on this machine connect in plain text (sslmode=disable), with no password:
  psql "host=127.0.0.1 port=5432 user=admin dbname=postgres sslmode=disable"

Every flag has an environment variable SIGV4_PROXY_PG_<FLAG> (--max-connections: SIGV4_PROXY_PG_MAX_CONNECTIONS);
the flag wins over the variable. Credentials come from the AWS chain (environment, --profile, SSO, roles, ...)
and are refreshed before they expire; SIGHUP reloads them. SIGTERM or Ctrl-C stops accepting (new clients get a
FATAL saying so) and waits up to --max-sigterm-delay for open sessions; a second signal stops at once."""

EPILOG = """\
examples:
  sigv4-proxy pg --hostname abc123.dsql.us-east-1.on.aws
  psql "host=127.0.0.1 port=5432 user=admin dbname=postgres sslmode=disable"

  # two clusters in one process: local ports 5432 and 5433
  sigv4-proxy pg --hostname abc123.dsql.us-east-1.on.aws,def456.dsql.eu-west-1.on.aws
  # chosen local ports, served as unix sockets in /run/dsql (.s.PGSQL.6432, as libpq expects)
  sigv4-proxy pg --hostname abc123.dsql.us-east-1.on.aws=6432 --unix-socket /run/dsql
  # RDS or Aurora PostgreSQL with IAM authentication
  sigv4-proxy pg --hostname mydb.cluster-abc123.us-east-1.rds.amazonaws.com --listen 127.0.0.1:6543
  # through an SSH tunnel (ssh -L 15432:abc123.dsql.us-east-1.on.aws:5432 bastion): TLS, SNI and the token
  # still name the cluster
  sigv4-proxy pg --hostname abc123.dsql.us-east-1.on.aws --hostaddr 127.0.0.1:15432
  # an interface VPC endpoint without private DNS
  sigv4-proxy pg --hostname vpce-0123-abcd.dsql-fnh4.us-east-1.vpce.amazonaws.com \\
      --cluster-id abcdefghijklmnopqrstuvwxyz --upstream-sslmode verify-ca
  # health endpoints (/startup, /liveness, /readiness) and /metrics for Kubernetes and Prometheus
  sigv4-proxy pg --hostname abc123.dsql.us-east-1.on.aws --health-port 9090

Documentation: sigv4-proxy help pg."""

ENV_PREFIX = "SIGV4_PROXY_PG_"
DEFAULT_LISTEN = "127.0.0.1:5432"
DEFAULT_PORT = 5432
# Mirrors of sigv4_proxy.pgproxy.config's defaults, for the help text (the parser is built without importing it).
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_SIGTERM_DELAY = 30.0
DEFAULT_HEALTH_HOST = "127.0.0.1"
DEFAULT_TEST_USER = "admin"
DEFAULT_TOKEN_EXPIRES_IN = 900
MAX_CONNECTIONS_LIMIT = 100_000
DSQL_MAX_EXPIRES_IN = 604_800  # a week: DSQL's limit for a token
RDS_MAX_EXPIRES_IN = 900  # RDS IAM tokens are valid for 15 minutes at most
DATABASE_KINDS = ("dsql", "rds")
SSLMODES = ("verify-full", "verify-ca")
SSLNEGOTIATIONS = ("postgres", "direct")
# A unix socket's path must fit sun_path (108 bytes on Linux, 104 on macOS and the BSDs, NUL included).
MAX_UNIX_PATH = 107 if sys.platform.startswith("linux") else 103
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
HOSTNAME_REQUIRED = (
    f"--hostname is required (or {ENV_PREFIX}HOSTNAME): the cluster endpoint, e.g. abc123.dsql.us-east-1.on.aws"
)


def env_name(flag: str) -> str:
    """The environment variable of ``--flag-name``: SIGV4_PROXY_PG_FLAG_NAME."""
    return flag_env_name(ENV_PREFIX, flag)


def configure(parser: argparse.ArgumentParser) -> None:
    _configure_clusters(parser.add_argument_group("clusters (upstream)"))
    _configure_listener(parser.add_argument_group("local endpoint (client side)"))
    _configure_operations(parser.add_argument_group("operations"))


def _add(group: argparse._ArgumentGroup, flag: str, text: str, **options: object) -> None:
    """A flag whose help ends with its environment variable: ``text (env NAME; default ...)``. Every default is
    None: an unset flag falls back to its variable, then to the default (see build_pg_config)."""
    if options.get("action") in ("store_true", "append"):
        options.setdefault("default", [] if options["action"] == "append" else None)
    note, _, default = text.partition(" [default: ")
    suffix = f"; default: {default.removesuffix(']')}" if default else ""
    group.add_argument(flag, help=f"{note} (env {env_name(flag)}{suffix})", **options)  # type: ignore[arg-type]


def _configure_clusters(group: argparse._ArgumentGroup) -> None:
    _add(
        group,
        "--hostname",
        "the cluster endpoint to serve, e.g. abc123.dsql.us-east-1.on.aws; :PORT is the upstream's port (RDS tokens "
        "sign it), =LOCALPORT the local port to serve it on (0: any free port). Repeatable, or comma-separated; "
        "the variable is comma-separated [default: none, one is required]",
        action="append",
        metavar="HOST[:PORT][=LOCALPORT]",
    )
    _add(
        group,
        "--hostaddr",
        "connect to this address (IP or name, [IPv6]:PORT) instead of resolving the hostname, as libpq's hostaddr: "
        "SNI, the certificate check and the token still use the hostname (SSH tunnels, endpoint IPs, the local "
        "emulator). The n-th applies to the n-th hostname; an empty one resolves its hostname. Repeatable, or "
        "comma-separated",
        action="append",
        metavar="ADDR[:PORT]",
    )
    _add(
        group,
        "--cluster-id",
        "the DSQL cluster id, for a hostname that is an interface VPC endpoint without private DNS "
        "(vpce-...vpce.amazonaws.com): the token is signed for ID.dsql.REGION.on.aws. Paired with the hostnames "
        "as --hostaddr is",
        action="append",
        metavar="ID",
    )
    _add(group, "--region", "the clusters' region [default: from the hostname]", metavar="REGION")
    _add(
        group,
        "--profile",
        "AWS profile to take credentials from [default: AWS_PROFILE, then botocore's default chain]",
        metavar="NAME",
    )
    _add(
        group,
        "--database-kind",
        "dsql (Aurora DSQL tokens) or rds (RDS and Aurora PostgreSQL IAM tokens) [default: rds for "
        "*.rds.amazonaws.com hostnames, else dsql]",
        metavar="dsql|rds",
    )
    _add(
        group,
        "--upstream-sslrootcert",
        "the CA certificates that verify the cluster's certificate: system (this machine's, Amazon's roots among "
        "them) or a PEM file [default: system]",
        metavar="FILE|system",
    )
    _add(
        group,
        "--upstream-sslmode",
        "verify-full (the certificate names the hostname) or verify-ca (any name; for a VPC endpoint without "
        "private DNS) [default: verify-full]",
        metavar="verify-full|verify-ca",
    )
    _add(
        group,
        "--upstream-sslnegotiation",
        "postgres (SSLRequest first) or direct (TLS at once, PostgreSQL 17+ and DSQL) [default: postgres]",
        metavar="postgres|direct",
    )
    _add(
        group,
        "--token-expires-in",
        f"token lifetime in seconds, checked only when a connection logs in: 1 to {DSQL_MAX_EXPIRES_IN} for DSQL, "
        f"1 to {RDS_MAX_EXPIRES_IN} for RDS [default: {DEFAULT_TOKEN_EXPIRES_IN}]",
        metavar="SECONDS",
    )


def _configure_listener(group: argparse._ArgumentGroup) -> None:
    _add(
        group,
        "--listen",
        "local address; its port is the first hostname's, the next ones count up; port 0 picks free ones. A "
        "non-loopback address needs --allow-remote and client certificates (--tls-cert, --tls-key, --tls-client-ca) "
        f"[default: {DEFAULT_LISTEN}]",
        metavar="HOST:PORT",
    )
    _add(
        group,
        "--unix-socket",
        "serve unix sockets DIR/.s.PGSQL.<port> (mode 0600) instead of TCP; clients connect with host=DIR. "
        "Excludes --listen",
        metavar="DIR",
    )
    _add(
        group,
        "--allow-remote",
        "allow a non-loopback --listen address: anyone who reaches the port logs in with your IAM identity, so "
        "client certificates are required too",
        action="store_true",
    )
    _add(group, "--tls-cert", "serve TLS to clients with this certificate (PEM; needs --tls-key)", metavar="FILE")
    _add(group, "--tls-key", "the private key of --tls-cert (PEM)", metavar="FILE")
    _add(
        group,
        "--tls-client-ca",
        "require a client certificate signed by this CA (PEM; mutual TLS; needs --tls-cert)",
        metavar="FILE",
    )
    _add(
        group,
        "--max-connections",
        "most client connections open at once across hostnames, logins in progress included; more get a FATAL "
        f"53300 [default: {DEFAULT_MAX_CONNECTIONS}]",
        metavar="N",
    )


def _configure_operations(group: argparse._ArgumentGroup) -> None:
    _add(
        group,
        "--connect-timeout",
        f"longest time to reach, TLS-handshake and log in to the cluster, e.g. 10s [default: "
        f"{DEFAULT_CONNECT_TIMEOUT:g}s]",
        metavar="DURATION",
    )
    _add(
        group,
        "--health-port",
        "serve /startup, /liveness, /readiness and /metrics (Prometheus) on this port; 0 picks a free one "
        "[default: none, no health server]",
        metavar="PORT",
    )
    _add(
        group,
        "--health-host",
        f"the health server's address (non-loopback: anyone who reaches it reads the metrics) [default: "
        f"{DEFAULT_HEALTH_HOST}]",
        metavar="HOST",
    )
    _add(
        group,
        "--readiness-dial",
        "/readiness also connects to every cluster (TCP and TLS, cached 10 s), besides checking the credentials "
        "and that a token can be made",
        action="store_true",
    )
    _add(
        group,
        "--max-sigterm-delay",
        "on SIGTERM or SIGINT, wait this long for open sessions to end before cutting them, e.g. 30s "
        f"[default: {DEFAULT_MAX_SIGTERM_DELAY:g}s]",
        metavar="DURATION",
    )
    _add(
        group,
        "--run-connection-test",
        "log in to every cluster once at start (as --test-user) and exit non-zero if one fails",
        action="store_true",
    )
    _add(
        group,
        "--test-user",
        f"the database user of --run-connection-test [default: {DEFAULT_TEST_USER}]",
        metavar="USER",
    )
    _add(group, "--json-log", "log one JSON object per line on stderr", action="store_true")


# --- flags and variables to a PgProxyConfig --------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One --hostname item, parsed."""

    hostname: str
    port: int
    listen_port: int | None


def build_pg_config(args: argparse.Namespace, environ: Mapping[str, str]) -> PgProxyConfig:
    """Check the `pg` flags and their SIGV4_PROXY_PG_* variables together and turn them into a PgProxyConfig.
    Raises UsageError listing every problem, one per line. Reads nothing but the file system (do the files
    exist)."""
    from sigv4_proxy.errors import UsageError
    from sigv4_proxy.pgproxy.config import PgProxyConfig

    settings = FlagsAndEnvironment(args, environ, ENV_PREFIX)
    problems: list[str] = []
    targets = _targets(settings, problems)
    listen_host, listen_port = _listen(settings, problems)
    unix_socket_dir = _unix_socket_dir(settings, problems)
    tls_cert, tls_key, tls_client_ca = _client_tls(settings, unix_socket_dir is not None, problems)
    allow_remote = settings.switch("--allow-remote", problems)
    if unix_socket_dir is None:
        _check_remote(settings, listen_host, allow_remote, problems)
    health_port = _port(settings, "--health-port", problems)
    health_host, readiness_dial = _health(settings, problems)
    run_connection_test = settings.switch("--run-connection-test", problems)
    config = PgProxyConfig(
        targets=targets,
        listen_host=listen_host,
        listen_port=listen_port,
        unix_socket_dir=unix_socket_dir,
        allow_remote=allow_remote,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        upstream_sslrootcert=_sslrootcert(settings, problems),
        upstream_sslmode="verify-ca" if _choice(settings, "--upstream-sslmode", SSLMODES, problems) else "verify-full",
        upstream_sslnegotiation=(
            "direct" if _choice(settings, "--upstream-sslnegotiation", SSLNEGOTIATIONS, problems) else "postgres"
        ),
        connect_timeout=_duration(settings, "--connect-timeout", DEFAULT_CONNECT_TIMEOUT, problems, zero=False),
        max_connections=_max_connections(settings, problems),
        health_host=health_host,
        health_port=health_port,
        readiness_dial=readiness_dial,
        max_sigterm_delay=_duration(settings, "--max-sigterm-delay", DEFAULT_MAX_SIGTERM_DELAY, problems, zero=True),
        run_connection_test=run_connection_test,
        test_user=_test_user(settings, run_connection_test, problems),
        json_log=settings.switch("--json-log", problems),
        profile=settings.value("--profile")[0],
        token_expires_in=_token_expires_in(settings, {target.kind for target in targets}, problems),
    )
    problems += _port_problems(config)
    if problems:
        raise UsageError("\n".join(problems))
    return config


def _choice(settings: FlagsAndEnvironment, flag: str, choices: tuple[str, str], problems: list[str]) -> bool:
    """True when the setting is the second of two choices (the first is the default)."""
    raw, where = settings.value(flag)
    if raw is None:
        return False
    if raw.lower() not in choices:
        problems.append(f"{where} must be {choices[0]} or {choices[1]}, got: {raw}")
        return False
    return raw.lower() == choices[1]


# --- clusters ---------------------------------------------------------------------------------------------------


def _targets(settings: FlagsAndEnvironment, problems: list[str]) -> tuple[Target, ...]:
    from sigv4_proxy.pgproxy.config import Target

    items, where = settings.items("--hostname")
    entries = [_parse_entry(item, where, problems) for item in items if item]
    if not entries:
        problems.append(HOSTNAME_REQUIRED)
        return ()
    hostaddrs, hostaddr_where = _paired(settings, "--hostaddr", len(entries), "127.0.0.1", problems)
    cluster_ids, cluster_id_where = _paired(
        settings, "--cluster-id", len(entries), "abcdefghijklmnopqrstuvwxyz", problems
    )
    region = _region(settings, problems)
    kind_setting = _kind_setting(settings, problems)
    targets: list[Target] = []
    for index, entry in enumerate(entries):
        if entry is None:
            continue
        kind = kind_setting or _implied_kind(entry.hostname)
        addr, addr_port = _hostaddr(hostaddrs[index], hostaddr_where, problems)
        targets.append(
            Target(
                hostname=entry.hostname,
                port=entry.port,
                listen_port=entry.listen_port,
                hostaddr=addr,
                hostaddr_port=addr_port,
                cluster_id=_cluster_id(cluster_ids[index], cluster_id_where, entry, kind, problems),
                region=region,
                kind=kind,
            )
        )
        problems += _target_problems(settings, entry, kind, region, cluster_ids[index] is not None, where)
    return tuple(targets)


def _parse_entry(item: str, where: str, problems: list[str]) -> _Entry | None:
    """``HOST[:PORT][=LOCALPORT]``, or None with the problem recorded."""
    from sigv4_proxy.errors import SigningError
    from sigv4_proxy.tokens import split_host

    host_text, equals, local_text = item.rpartition("=") if "=" in item else (item, "", "")
    listen_port: int | None = None
    try:
        if equals:
            listen_port = _port_number(local_text, lowest=0)
        host = split_host(host_text)
        port = DEFAULT_PORT if host.port is None else host.port
        if not 1 <= port <= 65535:
            raise ValueError(port)
    except (ValueError, SigningError):
        problems.append(
            f"{where} takes HOST[:PORT][=LOCALPORT] with ports from 1 to 65535 (LOCALPORT 0: any free port), e.g. "
            f"abc123.dsql.us-east-1.on.aws=5433, got: {item}"
        )
        return None
    return _Entry(host.hostname, port, listen_port)


def _port_number(text: str, *, lowest: int) -> int:
    number = _whole_number(text)
    if number is None or not lowest <= number <= 65535:
        raise ValueError(text)
    return number


def _whole_number(text: str) -> int | None:
    """``text`` as a whole number written in ASCII digits, else None (str.isdigit also takes '²', which int()
    refuses)."""
    return int(text) if text.isascii() and text.isdigit() else None


def _paired(
    settings: FlagsAndEnvironment, flag: str, hosts: int, example: str, problems: list[str]
) -> tuple[list[str | None], str]:
    """(one value per hostname, in order, where they came from); an empty value is none for that hostname, and
    without the setting every hostname has none."""
    items, where = settings.items(flag)
    if not items:
        return [None] * hosts, where
    if len(items) != hosts:
        problems.append(
            f"{where} gives {_count(len(items), 'value')} for {_count(hosts, 'hostname')}: give one per hostname, "
            f"in the same order, an empty one for a hostname that needs none (e.g. {flag} ,{example})"
        )
        return [None] * hosts, where
    return [item or None for item in items], where


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _hostaddr(raw: str | None, where: str, problems: list[str]) -> tuple[str | None, int | None]:
    """``ADDR``, ``ADDR:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address -> (address, port or None)."""
    if raw is None:
        return None, None
    text = raw
    port_text: str | None = None
    if text.startswith("["):
        text, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            text = ""
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
    try:
        port = None if port_text is None else _port_number(port_text, lowest=1)
        if not text or any(char.isspace() or char in "/@,=" for char in text):
            raise ValueError(raw)
    except ValueError:
        problems.append(
            f"{where} takes ADDR[:PORT] (an IP address or a host name; IPv6 as [::1]:5432) with a port from 1 to "
            f"65535, got: {raw}"
        )
        return None, None
    return text, port


def _cluster_id(raw: str | None, where: str, entry: _Entry, kind: DatabaseKind, problems: list[str]) -> str | None:
    if raw is None:
        return None
    problem = host_cluster_id_problem(where, raw)
    if problem is None and kind == "rds":
        problem = (
            f"{where} {raw} is for Aurora DSQL through a VPC endpoint; it does not apply to the RDS hostname "
            f"{entry.hostname}"
        )
    if problem is None:
        problem = cluster_id_mismatch(where, raw, entry.hostname, "hostname")
    if problem is not None:
        problems.append(problem)
        return None
    return raw


def _region(settings: FlagsAndEnvironment, problems: list[str]) -> str | None:
    from sigv4_proxy.endpoints import is_region

    raw, where = settings.value("--region")
    if raw is not None and not is_region(raw):
        problems.append(f"{where} must be an AWS region name such as us-east-1, got: {raw}")
        return None
    return raw


def _kind_setting(settings: FlagsAndEnvironment, problems: list[str]) -> DatabaseKind | None:
    raw, where = settings.value("--database-kind")
    if raw is None:
        return None
    if raw.lower() == "dsql":
        return "dsql"
    if raw.lower() == "rds":
        return "rds"
    problems.append(f"{where} must be dsql or rds, got: {raw}")
    return None


def _implied_kind(hostname: str) -> DatabaseKind:
    return "rds" if hostname.endswith(RDS_SUFFIXES) else "dsql"


def _target_problems(
    settings: FlagsAndEnvironment,
    entry: _Entry,
    kind: DatabaseKind,
    region: str | None,
    has_cluster_id: bool,
    where: str,
) -> list[str]:
    """What a hostname needs given its kind: a region to sign for, the right kind, a cluster id for a VPC
    endpoint."""
    from sigv4_proxy.tokens import host_info

    info = host_info(entry.hostname)
    host = entry.hostname
    problems: list[str] = []
    kind_where = settings.value("--database-kind")[1]
    if kind == "rds" and info.kind == "dsql":
        problems.append(f"{kind_where} rds does not fit {host}, an Aurora DSQL cluster: drop {kind_where}")
    elif kind == "dsql" and host.endswith(RDS_SUFFIXES):
        problems.append(f"{kind_where} dsql does not fit {host}, an RDS endpoint: drop {kind_where}")
    forms = "CLUSTER.dsql.REGION.on.aws and NAME.ID.REGION.rds.amazonaws.com"
    problems += host_region_problems(settings, where, host, info.region, region, forms)
    if kind == "dsql" and info.kind == "vpce" and not has_cluster_id:
        problems.append(vpce_cluster_id_problem(where, host, info.region))
    return problems


def _sslrootcert(settings: FlagsAndEnvironment, problems: list[str]) -> str:
    raw, where = settings.value("--upstream-sslrootcert")
    if raw is None or raw == "system":
        return "system"
    path = _existing_file(raw, where, problems)
    return "system" if path is None else str(path)


def _token_expires_in(settings: FlagsAndEnvironment, kinds: set[DatabaseKind], problems: list[str]) -> int:
    raw, where = settings.value("--token-expires-in")
    if raw is None:
        return DEFAULT_TOKEN_EXPIRES_IN
    highest, why = (
        (RDS_MAX_EXPIRES_IN, "RDS IAM tokens last 15 minutes at most")
        if "rds" in kinds
        else (DSQL_MAX_EXPIRES_IN, "7 days, DSQL's limit")
    )
    seconds = _whole_number(raw)
    if seconds is None or not 1 <= seconds <= highest:
        problems.append(f"{where} must be a whole number of seconds from 1 to {highest} ({why}), got: {raw}")
        return DEFAULT_TOKEN_EXPIRES_IN
    return seconds


# --- the local endpoint -----------------------------------------------------------------------------------------


def _listen(settings: FlagsAndEnvironment, problems: list[str]) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT`` (loopback)."""
    raw, where = settings.value("--listen")
    if raw is None:
        return "127.0.0.1", DEFAULT_PORT
    host, port_text = "127.0.0.1", raw
    if raw.startswith("["):
        host, bracket, rest = raw[1:].partition("]")
        port_text = rest[1:] if bracket and rest.startswith(":") else ""
    elif ":" in raw:
        host, _, port_text = raw.rpartition(":")
        host = host or "127.0.0.1"
    try:
        if not host or (":" in host and not raw.startswith("[")):
            raise ValueError(raw)
        return host, _port_number(port_text, lowest=0)
    except ValueError:
        problems.append(
            f"{where} must be HOST:PORT with a port from 0 to 65535 (IPv6 in brackets: [::1]:5432), got: {raw}"
        )
        return "127.0.0.1", DEFAULT_PORT


def _unix_socket_dir(settings: FlagsAndEnvironment, problems: list[str]) -> Path | None:
    from pathlib import Path

    raw, where = settings.value("--unix-socket")
    if raw is None:
        return None
    if settings.given("--listen"):
        problems.append(
            f"{where} and {settings.value('--listen')[1]} exclude each other: the unix sockets replace the TCP "
            "listener (each one is named by its port: the first hostname's is 5432, the next ones count up, or "
            "give HOST=LOCALPORT)"
        )
    path = Path(raw).expanduser()
    if not path.is_dir():
        problems.append(f"{where} {raw}: no such directory (create it first: the proxy makes .s.PGSQL.<port> in it)")
    return path


def _client_tls(
    settings: FlagsAndEnvironment, unix_socket: bool, problems: list[str]
) -> tuple[Path | None, Path | None, Path | None]:
    """--tls-cert, --tls-key and --tls-client-ca: the files exist, and each needs the ones it works with."""
    flags = ("--tls-cert", "--tls-key", "--tls-client-ca")
    given = {flag: settings.value(flag) for flag in flags}
    paths = {
        flag: None if raw is None else _existing_file(raw, where, problems) for flag, (raw, where) in given.items()
    }
    cert, key, client_ca = (given[flag][0] is not None for flag in flags)
    if unix_socket and (cert or key or client_ca):
        problems.append(
            "--tls-cert, --tls-key and --tls-client-ca apply to a TCP listener, not to --unix-socket (clients never "
            "use TLS over a unix socket)"
        )
    if cert and not key:
        problems.append("--tls-cert needs --tls-key (the certificate's private key)")
    if key and not cert:
        problems.append("--tls-key needs --tls-cert (the certificate it is the key of)")
    if client_ca and not (cert and key):
        problems.append(
            "--tls-client-ca needs --tls-cert and --tls-key: clients check this endpoint's certificate before they "
            "present theirs"
        )
    return paths["--tls-cert"], paths["--tls-key"], paths["--tls-client-ca"]


def _check_remote(settings: FlagsAndEnvironment, host: str, allow_remote: bool, problems: list[str]) -> None:
    """A non-loopback listen address needs --allow-remote and mutual TLS: without them, anyone who reaches the
    port logs in with this machine's IAM identity."""
    from sigv4_proxy.endpoints import is_loopback

    if is_loopback(host):
        return
    flags = ("--tls-cert", "--tls-key", "--tls-client-ca")
    missing = ([] if allow_remote else ["--allow-remote"]) + [flag for flag in flags if settings.value(flag)[0] is None]
    if missing:
        problems.append(
            f"{settings.value('--listen')[1]} {host} is not a loopback address: anyone who reaches the port logs in "
            "with your IAM identity; to serve other machines, pass --allow-remote and require client certificates "
            f"with --tls-cert, --tls-key and --tls-client-ca (missing: {', '.join(missing)})"
        )


def _existing_file(raw: str, where: str, problems: list[str]) -> Path | None:
    from pathlib import Path

    path = Path(raw).expanduser()
    if not path.is_file():
        problems.append(f"{where} {raw}: no such file")
        return None
    return path


def _max_connections(settings: FlagsAndEnvironment, problems: list[str]) -> int:
    raw, where = settings.value("--max-connections")
    if raw is None:
        return DEFAULT_MAX_CONNECTIONS
    number = _whole_number(raw)
    if number is None or not 1 <= number <= MAX_CONNECTIONS_LIMIT:
        problems.append(f"{where} must be a whole number from 1 to {MAX_CONNECTIONS_LIMIT}, got: {raw}")
        return DEFAULT_MAX_CONNECTIONS
    return number


# --- operations -------------------------------------------------------------------------------------------------


def _port(settings: FlagsAndEnvironment, flag: str, problems: list[str]) -> int | None:
    raw, where = settings.value(flag)
    if raw is None:
        return None
    try:
        return _port_number(raw, lowest=0)
    except ValueError:
        problems.append(f"{where} must be a port from 0 to 65535 (0: any free port), got: {raw}")
        return None


def _health(settings: FlagsAndEnvironment, problems: list[str]) -> tuple[str, bool]:
    """--health-host and --readiness-dial, which configure the health server --health-port turns on."""
    host, host_where = settings.value("--health-host")
    readiness_dial = settings.switch("--readiness-dial", problems)
    if not settings.given("--health-port"):
        if host is not None:
            problems.append(f"{host_where} needs --health-port (without it there is no health server)")
        if readiness_dial:
            problems.append("--readiness-dial needs --health-port (it adds a check to /readiness)")
    return host or DEFAULT_HEALTH_HOST, readiness_dial


def _duration(settings: FlagsAndEnvironment, flag: str, default: float, problems: list[str], *, zero: bool) -> float:
    from sigv4_proxy.config import duration_setting

    raw, where = settings.value(flag)
    shape = "a duration like 30s, 1m or 0" if zero else "a positive duration like 10s, 1m or 2.5"
    seconds = duration_setting(raw, f"{where} must be {shape}", problems, zero=zero)
    return default if seconds is None else seconds


def _test_user(settings: FlagsAndEnvironment, run_connection_test: bool, problems: list[str]) -> str:
    raw, where = settings.value("--test-user")
    if raw is not None and not run_connection_test:
        problems.append(f"{where} needs --run-connection-test (it is the user that test logs in as)")
    return raw or DEFAULT_TEST_USER


def _port_problems(config: PgProxyConfig) -> list[str]:
    """Local ports that overflow, collide with each other or with the health server's, and unix socket names
    that cannot be made."""
    problems: list[str] = []
    owners: dict[int, str] = {}
    for index, target in enumerate(config.targets):
        port = config.listen_port_of(index)
        if port > 65535:
            problems.append(
                f"the local port of {target.hostname} would be {port} (the listen port counted up), above 65535: "
                f"give it one with {target.hostname}=LOCALPORT"
            )
        elif config.unix_socket_dir is not None and port == 0:
            problems.append(
                f"--unix-socket names each socket .s.PGSQL.<port>, so the local port of {target.hostname} cannot be 0 "
                f"(any free port): give it one with {target.hostname}=LOCALPORT"
            )
        elif port in owners:
            problems.append(
                f"local port {port} is taken twice, by {owners[port]} and {target.hostname}: give each its own with "
                "HOST=LOCALPORT"
            )
        elif port != 0:
            owners[port] = target.hostname
            problems += _unix_path_problems(config, port)
    if config.health_port and config.unix_socket_dir is None and config.health_port in owners:
        shared_host = config.health_host == config.listen_host or {config.health_host, config.listen_host} & (
            _WILDCARD_HOSTS
        )
        if shared_host:
            problems.append(
                f"--health-port {config.health_port} is also the local port of {owners[config.health_port]}: "
                "give the health server another one"
            )
    return problems


def _unix_path_problems(config: PgProxyConfig, port: int) -> list[str]:
    if config.unix_socket_dir is None:
        return []
    path = str(config.unix_socket_dir / f".s.PGSQL.{port}")
    if len(path.encode()) <= MAX_UNIX_PATH:
        return []
    return [
        f"--unix-socket {config.unix_socket_dir}: the socket path {path} is longer than the {MAX_UNIX_PATH} bytes a "
        "unix socket address holds; use a shorter directory"
    ]


def run(args: argparse.Namespace) -> int:
    config = build_pg_config(args, os.environ)

    from sigv4_proxy.pgproxy.runner import serve_forever

    return serve_forever(config)

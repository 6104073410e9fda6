"""`sigv4-proxy loadtest dsql`: the DSQL insert load test on Locust (one machine, or a master and its workers).

Every flag has an environment variable ``SIGV4_PROXY_LOADTEST_<FLAG>`` (the flag in upper case, ``-`` as ``_``);
a flag wins over its variable, and an empty variable counts as unset. :func:`build_settings` checks them all
together (its own checks, then :func:`sigv4_proxy.loadtest.settings.settings_problems`) and raises one
UsageError listing every problem (exit 2). Standard library only at module level (the CLI builds every
subcommand's parser at start-up); nothing here imports Locust before :func:`run` reaches the engine.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from sigv4_proxy.cli._common import (
    RDS_SUFFIXES,
    FlagsAndEnvironment,
    cluster_id_mismatch,
    flag_dest,
    flag_env_name,
    host_cluster_id_problem,
    host_region_problems,
    vpce_cluster_id_problem,
)

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from sigv4_proxy.loadtest.results import LoadtestResult
    from sigv4_proxy.loadtest.settings import DsqlTarget, LoadtestSettings, Scenario

HELP = "load-test Aurora DSQL (or emulate dsql) with IAM tokens on Locust: live progress, a summary, a report"
DESCRIPTION = """\
Run a load test, with Locust as the engine (one machine, or a master and its workers). Targets:
  dsql   concurrent users inserting events into Aurora DSQL with a fresh IAM token per connection;
         against `emulate dsql` by default (no AWS account needed)
"""

DSQL_DESCRIPTION = """\
Insert events into Aurora DSQL the way an application does, with Locust as the engine: --users users each run
--iterations iterations, and each iteration is one transaction (retried on DSQL's optimistic-concurrency
conflicts, 40001 OC000/OC001). Every connection logs in with a fresh IAM token. Without --hostname it runs
against `emulate dsql`, started for the run on loopback: no AWS account needed.

scenarios (rows = users x iterations x rows per transaction):
  single   one INSERT of 1 row per transaction        --users 5 --iterations 2: 5 x 2 x 1  = 10 rows
  batch    one INSERT of --batch-size rows             --users 5 --iterations 2: 5 x 2 x 10 = 100 rows

It creates --table if it is missing (a UUID id, event name and type, created and updated timestamps, a JSON
payload of a few hundred bytes; the DDL in a transaction of its own), runs the users, then counts the rows of
this run back from the database. While it runs, one progress line on stderr (rows, rows/s, p50/p99, errors,
OCC retries; --no-progress hides it); at the end a summary on stdout: rows expected, committed and counted,
throughput, latency p50/p95/p99/max of connect and of transaction, errors by SQLSTATE, OCC retries, and each
refused login with the diagnosis of the token that was sent. --report writes it as one self-contained HTML page
(plots embedded, opens offline) or as JSON.

--duration stops the run after that long; without an explicit --iterations, users iterate until then.
--rate caps the transactions per second across all users.

Every flag has an environment variable SIGV4_PROXY_LOADTEST_<FLAG> (--batch-size:
SIGV4_PROXY_LOADTEST_BATCH_SIZE; a switch takes true or false); the flag wins over the variable.
Credentials come from the AWS chain (environment, --profile, SSO, roles, ...), refreshed while it runs.
"""

DSQL_EPILOG = """\
examples:
  sigv4-proxy loadtest dsql                           # emulate dsql, single: 5 users x 2 iterations = 10 rows
  sigv4-proxy loadtest dsql --scenario batch          # 5 x 2 x 10 = 100 rows
  sigv4-proxy loadtest dsql --users 50 --duration 1m --report run.html

  # a real cluster
  sigv4-proxy loadtest dsql --hostname abc123.dsql.us-east-1.on.aws --profile dev --users 20 --iterations 50
  # 100 transactions per second across 20 users, for 5 minutes, as JSON for a pipeline
  sigv4-proxy loadtest dsql --hostname abc123.dsql.us-east-1.on.aws --users 20 --rate 100 --duration 5m \\
      --report run.json
  # through a local `sigv4-proxy pg` endpoint: it mints the tokens, the users log in with no password
  sigv4-proxy pg --hostname abc123.dsql.us-east-1.on.aws --listen 127.0.0.1:6432 &
  sigv4-proxy loadtest dsql --via-proxy 127.0.0.1:6432

  # one machine, a master and two workers (each worker its own process, its own CPU):
  sigv4-proxy loadtest dsql --master --expect-workers 2 --users 10 --scenario batch --report run.html &
  sigv4-proxy loadtest dsql --worker &
  sigv4-proxy loadtest dsql --worker
  # several machines: the master listens on every interface, each worker names it and signs with the
  # credentials of its own machine (--emulate works only with workers on the master's machine)
  sigv4-proxy loadtest dsql --hostname abc123.dsql.us-east-1.on.aws --master --master-bind-host 0.0.0.0 \\
      --expect-workers 4 --users 200 --duration 10m --report run.html      # on 10.0.0.5
  sigv4-proxy loadtest dsql --worker --master-host 10.0.0.5                 # on each of the 4 workers

exit codes:
  0  every expected row was inserted and counted back, no error
  1  rows missing, an error (a refused login, a failed transaction, an OCC conflict still there after the
     retries), or the run could not start (no credentials, the cluster unreachable, a worker that never came)
  2  a mistake in the flags or their variables (all of them listed at once)

Documentation: sigv4-proxy help loadtest."""

ENV_PREFIX = "SIGV4_PROXY_LOADTEST_"
SCENARIO_NAMES = ("single", "batch")  # sigv4_proxy.loadtest.settings.SCENARIOS (not imported: start-up)
# Mirrors of sigv4_proxy.loadtest.settings' defaults, for the help text (the parser is built without importing it).
DEFAULT_USERS = 5
DEFAULT_ITERATIONS = 2
DEFAULT_BATCH_SIZE = 10
DEFAULT_TABLE = "event_headers"
DEFAULT_MASTER_PORT = 5557
DEFAULT_USER = "admin"
DEFAULT_DBNAME = "postgres"
DEFAULT_PORT = 5432
DEFAULT_TOKEN_EXPIRES_IN = 900
DSQL_MAX_EXPIRES_IN = 604_800  # a week: DSQL's limit for a token
CLUSTER_SSLMODES = ("verify-full", "verify-ca")
PROXY_SSLMODE = "disable"  # `sigv4-proxy pg` serves plain text on loopback; TLS is its upstream side
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's: an example for a verify-ca CA file

# Which flags apply where: a flag given where it does not apply is a problem, never silently ignored.
CLUSTER_ONLY_FLAGS = (
    "--hostaddr",
    "--port",
    "--region",
    "--profile",
    "--sslrootcert",
    "--sslmode",
    "--cluster-id",
    "--token-expires-in",
)
LOGIN_FLAGS = ("--user", "--dbname")  # a cluster's or a `sigv4-proxy pg` endpoint's
LOAD_FLAGS = (
    "--users",
    "--iterations",
    "--scenario",
    "--batch-size",
    "--duration",
    "--rate",
    "--spawn-rate",
    "--table",
    "--report",
)
MASTER_ONLY_FLAGS = ("--master-bind-host", "--expect-workers")
VALUE_FLAGS = (  # every flag that takes a value
    "--hostname",
    "--via-proxy",
    *CLUSTER_ONLY_FLAGS,
    *LOGIN_FLAGS,
    *LOAD_FLAGS,
    *MASTER_ONLY_FLAGS,
    "--master-port",
    "--master-host",
)
# What a worker is sent by its master (Locust forwards the master's options with every spawn message).
NOT_FOR_WORKERS = (
    "--emulate",
    "--hostname",
    "--via-proxy",
    *CLUSTER_ONLY_FLAGS,
    *LOGIN_FLAGS,
    *LOAD_FLAGS,
    "--master",
    *MASTER_ONLY_FLAGS,
)


def env_name(flag: str) -> str:
    """The environment variable of ``--flag-name``: SIGV4_PROXY_LOADTEST_FLAG_NAME."""
    return flag_env_name(ENV_PREFIX, flag)


# --- the parser ---------------------------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest="loadtest_target", metavar="TARGET", title="targets")
    targets.required = True
    dsql = targets.add_parser(
        "dsql",
        help="insert events into Aurora DSQL (or emulate dsql) with a fresh IAM token per connection",
        description=DSQL_DESCRIPTION,
        epilog=DSQL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_dsql(dsql)


def configure_dsql(parser: argparse.ArgumentParser) -> None:
    _configure_target(parser.add_argument_group("target (where the users connect)"))
    _configure_load(parser.add_argument_group("load (what each user does)"))
    _configure_output(parser.add_argument_group("output"))
    _configure_distributed(parser.add_argument_group("distributed mode (Locust's master and workers)"))


def _add(group: argparse._ArgumentGroup, flag: str, text: str, **options: object) -> None:
    """A flag whose help ends with its environment variable: ``text (env NAME; default ...)``. Every default is
    None: an unset flag falls back to its variable, then to the default (see build_settings)."""
    if options.get("action") == "store_true":
        options.setdefault("default", None)
    note, _, default = text.partition(" [default: ")
    suffix = f"; default: {default.removesuffix(']')}" if default else ""
    group.add_argument(flag, help=f"{note} (env {env_name(flag)}{suffix})", **options)  # type: ignore[arg-type]


def _configure_target(group: argparse._ArgumentGroup) -> None:
    _add(
        group,
        "--emulate",
        "start `emulate dsql` on loopback for this run and load-test it (a throwaway identity, no AWS account); "
        "the default when neither --hostname nor --via-proxy is given",
        action="store_true",
    )
    _add(
        group,
        "--hostname",
        "the cluster endpoint, e.g. abc123.dsql.us-east-1.on.aws, or a bare cluster id with --region; a PrivateLink "
        "name works too (without private DNS: add --cluster-id) [default: none, --emulate]",
        metavar="HOST",
    )
    _add(
        group,
        "--hostaddr",
        "dial this address (an IP or a name) instead of resolving --hostname, as libpq's hostaddr: SNI, the "
        "certificate check and the token still use --hostname (SSH tunnels, endpoint IPs)",
        metavar="ADDR",
    )
    _add(group, "--port", f"the cluster's port [default: {DEFAULT_PORT}]", metavar="PORT")
    _add(
        group,
        "--via-proxy",
        "connect to a local `sigv4-proxy pg` endpoint ([HOST:]PORT, its --listen) instead of the cluster: no token, "
        "plain text on loopback; the proxy mints the tokens and does TLS upstream. Excludes --hostname and the "
        "cluster flags (give those to `sigv4-proxy pg`)",
        metavar="[HOST:]PORT",
    )
    _add(
        group,
        "--user",
        f"the database role: admin signs DbConnectAdmin, another role DbConnect [default: {DEFAULT_USER}]",
        metavar="ROLE",
    )
    _add(group, "--dbname", f"the database [default: {DEFAULT_DBNAME}]", metavar="NAME")
    _add(group, "--region", "the cluster's region [default: from --hostname]", metavar="REGION")
    _add(
        group,
        "--profile",
        "AWS profile to take credentials from [default: AWS_PROFILE, then botocore's default chain]",
        metavar="NAME",
    )
    _add(
        group,
        "--sslrootcert",
        "the CA certificates that verify the cluster: system (this machine's, Amazon's roots among them) or a "
        "PEM file [default: system]",
        metavar="FILE|system",
    )
    _add(
        group,
        "--sslmode",
        "verify-full (the certificate names --hostname) or verify-ca (any name, for a VPC endpoint without private "
        "DNS; needs --sslrootcert FILE) [default: verify-full]",
        metavar="verify-full|verify-ca",
    )
    _add(
        group,
        "--cluster-id",
        "the cluster id, for a --hostname that is an interface VPC endpoint without private DNS "
        "(vpce-...vpce.amazonaws.com): the token is signed for ID.dsql.REGION.on.aws",
        metavar="ID",
    )
    _add(
        group,
        "--token-expires-in",
        f"token lifetime in seconds, 1 to {DSQL_MAX_EXPIRES_IN}; one token per connection, checked only at login "
        f"[default: {DEFAULT_TOKEN_EXPIRES_IN}]",
        metavar="SECONDS",
    )


def _configure_load(group: argparse._ArgumentGroup) -> None:
    _add(
        group,
        "--users",
        f"concurrent users (each one connection, across all workers) [default: {DEFAULT_USERS}]",
        metavar="N",
    )
    _add(
        group,
        "--iterations",
        f"transactions per user [default: {DEFAULT_ITERATIONS}; with --duration alone: until the duration]",
        metavar="N",
    )
    _add(
        group,
        "--scenario",
        "single: 1 row per transaction; batch: --batch-size rows per transaction [default: single]",
        metavar="single|batch",
    )
    _add(
        group,
        "--batch-size",
        f"rows per transaction with --scenario batch, 1 to 3000 (DSQL's limit) [default: {DEFAULT_BATCH_SIZE}]",
        metavar="N",
    )
    _add(
        group,
        "--duration",
        "stop after this long, e.g. 30s, 5m, 1h30m, even with iterations left [default: none, until the iterations "
        "are done]",
        metavar="DURATION",
    )
    _add(
        group,
        "--rate",
        "at most this many transactions per second, across all users (Locust's constant throughput) "
        "[default: none, as fast as they go]",
        metavar="TPS",
    )
    _add(group, "--spawn-rate", "users started per second [default: all at once]", metavar="USERS_PER_S")
    _add(
        group,
        "--table",
        f"the table to insert into (created when missing; [schema.]name) [default: {DEFAULT_TABLE}]",
        metavar="NAME",
    )


def _configure_output(group: argparse._ArgumentGroup) -> None:
    _add(
        group,
        "--report",
        "also write the result to FILE: .html (one self-contained page with plots, opens offline) or .json",
        metavar="FILE",
    )
    _add(group, "--no-progress", "no live progress line on stderr", action="store_true")


def _configure_distributed(group: argparse._ArgumentGroup) -> None:
    _add(
        group,
        "--master",
        "run Locust's master: it waits for --expect-workers workers, spreads the users over them, merges their "
        "statistics and prints the summary",
        action="store_true",
    )
    _add(
        group,
        "--master-bind-host",
        "the address the master listens on for workers; 0.0.0.0 for workers on other machines [default: 127.0.0.1]",
        metavar="HOST",
    )
    _add(
        group,
        "--master-port",
        f"the master's port (the master listens on it, workers connect to it) [default: {DEFAULT_MASTER_PORT}]",
        metavar="PORT",
    )
    _add(group, "--expect-workers", "workers the master waits for before it starts [default: 1]", metavar="N")
    _add(
        group,
        "--worker",
        "run a Locust worker: it connects to the master and runs the users it is given, with the target and the "
        "load the master sends (so a worker takes no target or load flags)",
        action="store_true",
    )
    _add(group, "--master-host", "where a --worker finds its master [default: 127.0.0.1]", metavar="HOST")


# --- flags and variables to LoadtestSettings ------------------------------------------------------------------------

SWITCHES = frozenset({"--emulate", "--no-progress", "--master", "--worker"})
_LOCAL_HOST = "127.0.0.1"


def build_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> LoadtestSettings:
    """Check the `loadtest dsql` flags and their SIGV4_PROXY_LOADTEST_* variables together and turn them into
    LoadtestSettings. Raises UsageError listing every problem, one per line (exit 2). Reads nothing but the file
    system (do --sslrootcert and --report's directory exist); imports no driver and no Locust."""
    from sigv4_proxy.errors import UsageError
    from sigv4_proxy.loadtest.settings import settings_problems

    values = FlagsAndEnvironment(args, environ, ENV_PREFIX, SWITCHES)
    problems = _empty_flags(args)
    master = values.switch("--master", problems)
    worker = values.switch("--worker", problems)
    if master and worker:
        problems.append(
            f"{values.value('--master')[1]} and {values.value('--worker')[1]} exclude each other: run one process "
            "with --master and each worker with --worker"
        )
    if worker and not master:
        settings = _worker_settings(values, problems)
    else:
        settings = _run_settings(values, "master" if master else "local", problems)
        problems += _distributed_problems(values, settings)
    # A value that could not be parsed fell back to its default, so the shared checks never report it again.
    problems += [line for line in settings_problems(settings) if line not in problems]
    if problems:
        raise UsageError("\n".join(problems))
    return settings


def _empty_flags(args: argparse.Namespace) -> list[str]:
    """A flag given an empty value: most often an unset shell variable (``--hostname "$HOST"``), which must not
    quietly become the default (the emulator instead of the cluster, no report)."""
    return [
        f"{flag} is empty (an unset shell variable?): give it a value, or leave {flag} out"
        for flag in VALUE_FLAGS
        if isinstance(getattr(args, flag_dest(flag), None), str) and not getattr(args, flag_dest(flag)).strip()
    ]


def _worker_settings(values: FlagsAndEnvironment, problems: list[str]) -> LoadtestSettings:
    """--worker: where its master is, nothing else; the target and the load come from the master."""
    from sigv4_proxy.loadtest.settings import LoadtestSettings

    stray = values.where_given(NOT_FOR_WORKERS)
    if stray:
        problems.append(
            f"--worker runs what its master sends: drop {', '.join(stray)} (give them to the --master process)"
        )
    return LoadtestSettings(
        mode="worker",
        master_host=_host(values, "--master-host", problems) or _LOCAL_HOST,
        master_port=_port(values, "--master-port", problems) or DEFAULT_MASTER_PORT,
        progress=not values.switch("--no-progress", problems),
    )


def _run_settings(
    values: FlagsAndEnvironment, mode: Literal["local", "master"], problems: list[str]
) -> LoadtestSettings:
    """A local run or a master: the target, the load, the output and the master's own settings."""
    from sigv4_proxy.loadtest.settings import LoadtestSettings

    target = _target(values, problems)
    duration = _duration(values, problems)
    scenario = _scenario(values, problems)
    return LoadtestSettings(
        target=target,
        users=_whole(values, "--users", DEFAULT_USERS, problems),
        spawn_rate=_positive_number(values, "--spawn-rate", "users started per second", problems),
        iterations=_iterations(values, duration, problems),
        scenario=scenario,
        batch_size=_batch_size(values, scenario, problems),
        duration=duration,
        rate=_positive_number(values, "--rate", "transactions per second", problems),
        table=values.value("--table")[0] or DEFAULT_TABLE,
        report=_report(values, problems),
        progress=not values.switch("--no-progress", problems),
        mode=mode,
        master_port=_port(values, "--master-port", problems) or DEFAULT_MASTER_PORT,
        master_bind_host=_host(values, "--master-bind-host", problems) or _LOCAL_HOST,
        expect_workers=_expect_workers(values, problems),
    )


def _distributed_problems(values: FlagsAndEnvironment, settings: LoadtestSettings) -> list[str]:
    """A master's or a worker's flags given to a process that is not one, and an emulator workers cannot reach."""
    from sigv4_proxy.endpoints import is_loopback

    problems: list[str] = []
    if settings.mode == "local":
        problems += [
            f"{where} needs --master (it configures the master)" for where in values.where_given(MASTER_ONLY_FLAGS)
        ]
        if values.given("--master-port"):
            problems.append(
                f"{values.value('--master-port')[1]} needs --master or --worker (the port the master listens on and "
                "its workers connect to)"
            )
    if values.given("--master-host"):
        problems.append(f"{values.value('--master-host')[1]} needs --worker (it is where a worker finds its master)")
    if settings.mode == "master" and settings.emulate and not is_loopback(settings.master_bind_host):
        problems.append(
            f"{values.value('--master-bind-host')[1]} {settings.master_bind_host}: the emulator (--emulate, the "
            "default without --hostname) listens on loopback with a throwaway identity, so only workers on this "
            "machine can use it; keep the master on loopback, or give a real cluster with --hostname"
        )
    return problems


# --- the target -----------------------------------------------------------------------------------------------------


def _target(values: FlagsAndEnvironment, problems: list[str]) -> DsqlTarget | None:
    """A real cluster (--hostname), a `sigv4-proxy pg` endpoint (--via-proxy), or None: `emulate dsql`."""
    emulate = values.switch("--emulate", problems)
    hostname, host_where = values.value("--hostname")
    proxy, proxy_where = values.value("--via-proxy")
    chosen = [where for raw, where in ((hostname, host_where), (proxy, proxy_where)) if raw is not None]
    if emulate and chosen:
        problems.append(
            f"{values.value('--emulate')[1]} and {chosen[0]} exclude each other: --emulate load-tests a local "
            f"emulator started for the run, {chosen[0]} names another target; drop one of them"
        )
    if hostname is not None and proxy is not None:
        problems.append(
            f"{host_where} and {proxy_where} exclude each other: through --via-proxy the users connect to the proxy, "
            "and the proxy's own --hostname names the cluster"
        )
    if proxy is not None:
        return _proxy_target(values, proxy, proxy_where, problems)
    if hostname is not None:
        return _cluster_target(values, hostname, host_where, problems)
    stray = values.where_given(CLUSTER_ONLY_FLAGS + LOGIN_FLAGS)
    if stray:
        verb = "applies" if len(stray) == 1 else "apply"
        problems.append(
            f"{', '.join(stray)} {verb} to a real cluster: add --hostname (with --emulate, the default, the users log "
            "in to the emulator as admin)"
        )
    return None


def _proxy_target(values: FlagsAndEnvironment, raw: str, where: str, problems: list[str]) -> DsqlTarget:
    from sigv4_proxy.loadtest.settings import DsqlTarget

    stray = values.where_given(CLUSTER_ONLY_FLAGS)
    if stray:
        problems.append(
            f"--via-proxy connects to a sigv4-proxy pg endpoint, which mints the tokens and does TLS upstream: drop "
            f"{', '.join(stray)} (set them on sigv4-proxy pg)"
        )
    host, port = _proxy_address(raw, where, problems)
    return DsqlTarget(
        hostname=host,
        port=port,
        user=values.value("--user")[0] or DEFAULT_USER,
        dbname=values.value("--dbname")[0] or DEFAULT_DBNAME,
        sslmode=PROXY_SSLMODE,
        mint_tokens=False,
    )


def _proxy_address(raw: str, where: str, problems: list[str]) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` of a loopback `sigv4-proxy pg` endpoint."""
    from sigv4_proxy.endpoints import is_loopback

    host, port_text = _LOCAL_HOST, raw
    if raw.startswith("["):
        host, bracket, rest = raw[1:].partition("]")
        port_text = rest[1:] if bracket and rest.startswith(":") else ""
    elif ":" in raw:
        host, _, port_text = raw.rpartition(":")
    port = _port_number(port_text)
    if port is None or not _is_address(host) or (":" in host and not raw.startswith("[")):
        problems.append(
            f"{where} takes the [HOST:]PORT of a sigv4-proxy pg endpoint (its --listen), e.g. 127.0.0.1:5432, "
            f"got: {raw}"
        )
        return _LOCAL_HOST, DEFAULT_PORT
    if not is_loopback(host):
        problems.append(
            f"{where} {host} is not a loopback address: sigv4-proxy pg serves other machines only with client "
            "certificates, which the load test does not send; run sigv4-proxy pg on this machine"
        )
    return host, port


def _cluster_target(values: FlagsAndEnvironment, raw: str, where: str, problems: list[str]) -> DsqlTarget | None:
    from sigv4_proxy.dsql._params import is_cluster_id
    from sigv4_proxy.errors import SigningError
    from sigv4_proxy.loadtest.settings import DsqlTarget
    from sigv4_proxy.tokens import split_host

    region = _region(values, problems)
    try:
        host = split_host(raw)
        if host.port is not None and _port_number(str(host.port)) is None:
            raise ValueError(host.port)
    except (SigningError, ValueError):
        problems.append(
            f"{where} takes a cluster endpoint such as abc123.dsql.us-east-1.on.aws (or a cluster id with --region), "
            f"got: {raw}"
        )
        return None
    hostname = host.hostname
    if is_cluster_id(hostname):
        if region is None:
            if not values.given("--region"):
                problems.append(
                    f"{where} {hostname} is a cluster id: add --region (the endpoint is {hostname}.dsql.REGION.on.aws)"
                )
            return None
        hostname = f"{hostname}.dsql.{region}.on.aws"
    cluster_id = _cluster_id(values, hostname, problems)
    problems += _host_problems(values, hostname, where, region, has_cluster_id=cluster_id is not None)
    sslmode, sslrootcert = _tls(values, hostname, where, problems)
    return DsqlTarget(
        hostname=hostname,
        hostaddr=_hostaddr(values, problems),
        port=_cluster_port(values, host.port, where, problems),
        user=values.value("--user")[0] or DEFAULT_USER,
        dbname=values.value("--dbname")[0] or DEFAULT_DBNAME,
        region=region,
        profile=values.value("--profile")[0],
        sslmode=sslmode,
        sslrootcert=sslrootcert,
        expires_in=_token_expires_in(values, problems),
        cluster_id=cluster_id,
    )


def _host_problems(
    values: FlagsAndEnvironment, hostname: str, where: str, region: str | None, *, has_cluster_id: bool
) -> list[str]:
    """What the endpoint needs: to be DSQL's, a region to sign for, a cluster id for a VPC endpoint."""
    from sigv4_proxy.tokens import host_info

    if hostname.endswith(RDS_SUFFIXES):
        return [
            f"{where} {hostname} is an RDS endpoint: loadtest dsql tests Aurora DSQL (for RDS with IAM "
            "authentication, run sigv4-proxy pg in front of it and use --via-proxy)"
        ]
    info = host_info(hostname)
    problems = host_region_problems(values, where, hostname, info.region, region, "CLUSTER.dsql.REGION.on.aws")
    if info.kind == "vpce" and not has_cluster_id:
        problems.append(vpce_cluster_id_problem(where, hostname, info.region))
    return problems


def _cluster_id(values: FlagsAndEnvironment, hostname: str, problems: list[str]) -> str | None:
    raw, where = values.value("--cluster-id")
    if raw is None:
        return None
    problem = host_cluster_id_problem(where, raw) or cluster_id_mismatch(where, raw, hostname, "--hostname")
    if problem is not None:
        problems.append(problem)
        return None
    return raw


def _tls(values: FlagsAndEnvironment, hostname: str, host_where: str, problems: list[str]) -> tuple[str, str]:
    """(sslmode, sslrootcert). libpq refuses sslrootcert=system with anything but verify-full, and a VPC endpoint
    without private DNS has a certificate that does not name it, so both get their fix here, before the run."""
    from pathlib import Path

    from sigv4_proxy.tokens import host_info

    mode_raw, mode_where = values.value("--sslmode")
    sslmode = CLUSTER_SSLMODES[0]
    if mode_raw is not None:
        if mode_raw.lower() in CLUSTER_SSLMODES:
            sslmode = mode_raw.lower()
        else:
            problems.append(
                f"{mode_where} must be verify-full or verify-ca (the users always check the cluster's certificate), "
                f"got: {mode_raw}"
            )
    root_raw, root_where = values.value("--sslrootcert")
    sslrootcert = "system"
    if root_raw is not None and root_raw != "system":
        path = Path(root_raw).expanduser()
        if path.is_file():
            sslrootcert = str(path)
        else:
            problems.append(f"{root_where} {root_raw}: no such file")
    if sslmode == "verify-ca" and (root_raw is None or root_raw == "system"):
        problems.append(
            f"{mode_where} verify-ca needs --sslrootcert FILE: libpq takes the system's CAs (sslrootcert=system) "
            f"only with verify-full; give them as a file, e.g. --sslrootcert {SYSTEM_CA_BUNDLE}"
        )
    if host_info(hostname).kind == "vpce" and sslmode == "verify-full":
        problems.append(
            f"{host_where} {hostname} is an interface VPC endpoint without private DNS: its certificate does not name "
            f"it, so verify-full fails; pass --sslmode verify-ca --sslrootcert FILE (e.g. {SYSTEM_CA_BUNDLE})"
        )
    return sslmode, sslrootcert


def _hostaddr(values: FlagsAndEnvironment, problems: list[str]) -> str | None:
    raw, where = values.value("--hostaddr")
    if raw is None:
        return None
    if not _is_address(raw):
        problems.append(f"{where} takes one IP address or host name, without a port (the port is --port), got: {raw}")
        return None
    return raw


def _cluster_port(values: FlagsAndEnvironment, host_port: int | None, host_where: str, problems: list[str]) -> int:
    """--port, or the port written in --hostname (a pasted host:port), or 5432; given twice, they must agree."""
    port = _port(values, "--port", problems)
    if port is not None and host_port is not None and port != host_port:
        problems.append(
            f"{host_where} says port {host_port} and {values.value('--port')[1]} says {port}: give the port once"
        )
    return port or host_port or DEFAULT_PORT


def _region(values: FlagsAndEnvironment, problems: list[str]) -> str | None:
    from sigv4_proxy.endpoints import is_region

    raw, where = values.value("--region")
    if raw is not None and not is_region(raw):
        problems.append(f"{where} must be an AWS region name such as us-east-1, got: {raw}")
        return None
    return raw


def _token_expires_in(values: FlagsAndEnvironment, problems: list[str]) -> int:
    raw, where = values.value("--token-expires-in")
    if raw is None:
        return DEFAULT_TOKEN_EXPIRES_IN
    seconds = _whole_number(raw)
    if seconds is None or not 1 <= seconds <= DSQL_MAX_EXPIRES_IN:
        problems.append(
            f"{where} must be a whole number of seconds from 1 to {DSQL_MAX_EXPIRES_IN} (7 days, DSQL's limit), "
            f"got: {raw}"
        )
        return DEFAULT_TOKEN_EXPIRES_IN
    return seconds


# --- the load, the output, the master -------------------------------------------------------------------------------


def _whole(values: FlagsAndEnvironment, flag: str, default: int, problems: list[str]) -> int:
    """A count; its range is settings_problems' to check (one message for a flag and its variable alike)."""
    raw, where = values.value(flag)
    if raw is None:
        return default
    number = _whole_number(raw)
    if number is None:
        problems.append(f"{where} must be a whole number, got: {raw}")
        return default
    return number


def _iterations(values: FlagsAndEnvironment, duration: float | None, problems: list[str]) -> int | None:
    """--iterations; None (until the duration) when only --duration bounds the run."""
    if values.value("--iterations")[0] is None and duration is not None:
        return None
    return _whole(values, "--iterations", DEFAULT_ITERATIONS, problems)


def _scenario(values: FlagsAndEnvironment, problems: list[str]) -> Scenario:
    raw, where = values.value("--scenario")
    if raw is None or raw.lower() == "single":
        return "single"
    if raw.lower() == "batch":
        return "batch"
    problems.append(f"{where} must be {' or '.join(SCENARIO_NAMES)}, got: {raw}")
    return "single"


def _batch_size(values: FlagsAndEnvironment, scenario: Scenario, problems: list[str]) -> int:
    size = _whole(values, "--batch-size", DEFAULT_BATCH_SIZE, problems)
    if scenario == "single" and values.given("--batch-size"):
        problems.append(
            f"{values.value('--batch-size')[1]} applies to --scenario batch (--scenario single inserts 1 row per "
            "transaction)"
        )
    return size


def _duration(values: FlagsAndEnvironment, problems: list[str]) -> float | None:
    from sigv4_proxy.config import duration_setting

    raw, where = values.value("--duration")
    return duration_setting(raw, f"{where} must be a positive duration like 30s, 5m or 1h30m", problems, zero=False)


def _positive_number(values: FlagsAndEnvironment, flag: str, unit: str, problems: list[str]) -> float | None:
    import math

    raw, where = values.value(flag)
    if raw is None:
        return None
    try:
        number = float(raw)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        problems.append(f"{where} must be a positive number of {unit}, e.g. 50 or 2.5, got: {raw}")
        return None
    return number


def _report(values: FlagsAndEnvironment, problems: list[str]) -> Path | None:
    """The report's path; its directory must exist now, not after a run of an hour. The suffix is
    settings_problems' to check."""
    from pathlib import Path

    raw, where = values.value("--report")
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if path.is_dir():
        problems.append(f"{where} {raw} is a directory: name a file ending in .html or .json")
    elif not path.parent.is_dir():
        problems.append(f"{where} {raw}: no such directory {path.parent}")
    return path


def _expect_workers(values: FlagsAndEnvironment, problems: list[str]) -> int:
    raw, where = values.value("--expect-workers")
    if raw is None:
        return 1
    number = _whole_number(raw)
    if number is None or number < 1:
        problems.append(f"{where} must be a whole number of at least 1, got: {raw}")
        return 1
    return number


def _port(values: FlagsAndEnvironment, flag: str, problems: list[str]) -> int | None:
    raw, where = values.value(flag)
    if raw is None:
        return None
    port = _port_number(raw)
    if port is None:
        problems.append(f"{where} must be a port from 1 to 65535, got: {raw}")
    return port


def _host(values: FlagsAndEnvironment, flag: str, problems: list[str]) -> str | None:
    raw, where = values.value(flag)
    if raw is None:
        return None
    if not _is_address(raw):
        problems.append(f"{where} must be one IP address or host name, got: {raw}")
        return None
    return raw


def _port_number(text: str) -> int | None:
    number = _whole_number(text)
    return number if number is not None and 1 <= number <= 65535 else None


def _whole_number(text: str) -> int | None:
    """``text`` as a whole number written in ASCII digits, else None (str.isdigit also takes '²', which int()
    refuses)."""
    return int(text) if text.isascii() and text.isdigit() else None


_HOST_LABEL = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"


def _is_address(text: str) -> bool:
    """An IP address (IPv6 without brackets) or a host name: what libpq's hostaddr or a bind address takes."""
    import ipaddress
    import re

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return re.fullmatch(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?", text) is not None and len(text) <= 253
    return True


# --- the run --------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Build the settings (exit 2 on a mistake), run the load test or the worker, print the summary, write the
    report. Exit 0 when the result is ok, else 1."""
    settings = build_settings(args, os.environ)
    # The engine imports Locust (gevent's monkey-patching) before psycopg; nothing imported here pulls in a driver.
    from sigv4_proxy.errors import Sigv4ProxyError
    from sigv4_proxy.loadtest.engine import LoadtestError, run_loadtest, run_worker

    try:
        if settings.mode == "worker":
            return int(run_worker(settings))
        result = run_loadtest(settings, progress=sys.stderr if settings.progress else None)
    except LoadtestError as exc:  # the run could not happen (the master's port taken, workers that never came)
        raise Sigv4ProxyError(str(exc)) from None
    from sigv4_proxy.loadtest.summary import render_summary

    summary = render_summary(result)
    sys.stdout.write(summary if summary.endswith("\n") else summary + "\n")
    sys.stdout.flush()
    if settings.report is not None:
        _write_report(result, settings.report)
    return 0 if result.ok else 1


def _write_report(result: LoadtestResult, path: Path) -> None:
    from sigv4_proxy.errors import Sigv4ProxyError
    from sigv4_proxy.loadtest.report import write_report

    try:
        write_report(result, path)
    except OSError as exc:
        raise Sigv4ProxyError(f"cannot write --report {path}: {exc.strerror or exc}") from None
    print(f"report: {path}", file=sys.stderr, flush=True)

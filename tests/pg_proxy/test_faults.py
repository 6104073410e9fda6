"""Faults around `sigv4-proxy pg`, each seen from three sides: the exact FATAL (SQLSTATE, message, hint) the client
gets, the proxy's log (one line naming the cause; for an upstream refusal a WARNING with the upstream's fields and
our diagnosis of the token), and the proxy serving the next client normally afterwards.

* the proxy's own answers (message ``sigv4-proxy: ...``): upstream down, DNS failure, an untrusted upstream
  certificate, credentials that cannot be loaded, too many connections, a client that never speaks;
* the upstream's answers, passed on byte for byte: every token fault the proxy side can cause (a denied principal,
  a role missing, unmapped or without LOGIN, expired session credentials, an unknown key, the wrong region, a
  clock behind) and DSQL's SNI refusals (no server name, another cluster's name);
* broken sessions: the client vanishing mid-COPY, the upstream session terminated mid-query.

Exact ErrorResponse fields are read with the raw client of tests/emulate_dsql (libpq folds them into one text).
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.emulate_dsql import rawclient
from tests.emulate_dsql.conftest import DENIED_ARN, Cast
from tests.support.tls import make_pki
from tests.support.waiting import wait_until_sync

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("prometheus_client")

from sigv4_proxy.credentials import StaticCredentialProvider  # noqa: E402
from sigv4_proxy.emulate.dsql.auth import Identity, generate_identity  # noqa: E402
from sigv4_proxy.emulate.dsql.server import DsqlEmulator, DsqlEmulatorConfig, start_dsql  # noqa: E402
from sigv4_proxy.errors import CredentialsError  # noqa: E402
from sigv4_proxy.pgproxy.config import PgProxyConfig, Target  # noqa: E402
from sigv4_proxy.pgproxy.runner import PgProxy, PgProxyStartError, start_pg_proxy  # noqa: E402
from sigv4_proxy.signing.model import Credentials  # noqa: E402
from sigv4_proxy.tokens import dsql_token  # noqa: E402

ACCESS_DENIED = "unable to accept connection, access denied"
PROXY_PREFIX = "sigv4-proxy: "
SECRET_MARKERS = ("X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Credential")
# The one INFO line per ended connection (runner's contract): target, peer, user, db, outcome, time, bytes, reason.
CONNECTION_LINE = re.compile(
    r"pg: (?P<target>\S+) (?P<peer>\S+) user=(?P<user>\S+) db=(?P<db>\S+) (?P<outcome>ok|refused|failed|cancel) "
    r"(?P<seconds>\d+\.\d+)s up=(?P<up>\d+) down=(?P<down>\d+)(?: (?P<reason>.+))?"
)


# ------------------------------------------------------------------------------------------------ log capture


class LogCapture(logging.Handler):
    """Every record of the `sigv4_proxy` loggers, whatever the process's logging setup: a handler on the
    `sigv4_proxy` logger itself (``setup_logging`` turns its propagation off, so caplog at the root may miss it)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.records.append(record)
            self.changed.notify_all()

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        with self.changed:
            return [record.getMessage() for record in self.records if record.levelno >= level]

    def warnings(self) -> list[str]:
        return self.messages(logging.WARNING)

    def connection_lines(self) -> list[dict[str, str]]:
        found = (CONNECTION_LINE.fullmatch(message) for message in self.messages(logging.INFO))
        return [match.groupdict(default="") for match in found if match]

    def wait_for_connection_lines(self, count: int, timeout: float = 10.0) -> list[dict[str, str]]:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.connection_lines()) >= count, timeout):
                raise AssertionError(f"expected {count} connection lines in:\n" + "\n".join(self.messages()))
        return self.connection_lines()

    @contextlib.contextmanager
    def installed(self) -> Iterator[LogCapture]:
        logger = logging.getLogger("sigv4_proxy")
        level = logger.level
        logger.addHandler(self)
        logger.setLevel(logging.DEBUG)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)


@contextlib.contextmanager
def captured_logs(identities: tuple[Identity, ...]) -> Iterator[LogCapture]:
    """The `sigv4_proxy` log records of a test; at its end, none of them (raw or formatted as text or JSON) may
    carry a secret of `identities`."""
    from sigv4_proxy.logs import JsonFormatter, TextFormatter

    with LogCapture().installed() as capture:
        yield capture
    formatted = [
        formatter.format(record) for record in capture.records for formatter in (TextFormatter(), JsonFormatter())
    ]
    assert_no_secrets(capture.messages() + formatted, identities)


@pytest.fixture
def pg_log(cast: Cast) -> Iterator[LogCapture]:
    with captured_logs(cast.all()) as capture:
        yield capture


def assert_no_secrets(texts: list[str], identities: tuple[Identity, ...]) -> None:
    """No secret key, session token, whole access key id or signature in any of `texts`."""
    joined = "\n".join(texts)
    for identity in identities:
        assert identity.secret_access_key not in joined
        assert identity.access_key_id not in joined
        assert not identity.session_token or identity.session_token not in joined
    for marker in SECRET_MARKERS:
        assert marker not in joined


# ------------------------------------------------------------------------------------------ proxies and clients


def emulator_target(emulator: DsqlEmulator, **overrides: Any) -> Target:
    """A target for `emulator`'s cluster, dialled at its loopback listener, served on any free local port."""
    fields: dict[str, Any] = {
        "hostname": emulator.host,
        "hostaddr": emulator.listen_host,
        "hostaddr_port": emulator.port,
        "listen_port": 0,
    }
    return Target(**{**fields, **overrides})


def credentials_of(identity: Identity) -> Credentials:
    return Credentials(identity.access_key_id, identity.secret_access_key, identity.session_token)


class SwitchableCredentials(StaticCredentialProvider):
    """The proxy's credential source, switched by the test (a refused identity first, then a good one)."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        super().__init__(lambda: credentials_of(self.identity))


class LoadingCredentials:
    """A credential source like botocore's: nothing cached, so the door loads (off its loop) on each login;
    loading fails while ``error`` is set."""

    method = "test"
    profile: str | None = None

    def __init__(self, identity: Identity, error: str | None) -> None:
        self.identity = identity
        self.error = error

    def get(self, now: datetime | None = None) -> Credentials:
        if self.error is not None:
            raise CredentialsError(self.error)
        return credentials_of(self.identity)

    def cached(self, now: datetime | None = None) -> Credentials | None:
        return None

    def force_refresh(self) -> Credentials:
        return self.get()


StartProxy = Callable[..., PgProxy]


@pytest.fixture
def start_proxy(cast: Cast) -> Iterator[StartProxy]:
    """start(*targets, ca_file=..., credentials=None, now=None, **settings) -> a running proxy, closed at teardown;
    the credentials default to the admin identity's."""
    with contextlib.ExitStack() as stack:

        def start(
            *targets: Target,
            ca_file: Path | str,
            credentials: Any = None,
            now: Callable[[], datetime] | None = None,
            **settings: Any,
        ) -> PgProxy:
            config = PgProxyConfig(targets=targets, listen_port=0, upstream_sslrootcert=str(ca_file), **settings)
            source = credentials if credentials is not None else StaticCredentialProvider(credentials_of(cast.admin))
            return stack.enter_context(start_pg_proxy(config, credentials=source, now=now))

        yield start


def connect_through(proxy: PgProxy, user: str = "admin", index: int = 0, **libpq: Any) -> Any:
    """psycopg through the proxy's plain client leg, with no password of its own (autocommit)."""
    return psycopg.connect(**proxy.libpq_params(index, user), connect_timeout="10", autocommit=True, **libpq)


def raw_login(proxy: PgProxy, user: str = "admin", index: int = 0) -> rawclient.Outcome:
    """A login through the proxy, reading the exact ErrorResponse fields (no password: the proxy asks none)."""
    return rawclient.login(("127.0.0.1", proxy.port(index)), user=user, password="", sni=None, tls="none")


def direct_refusal(emulator: DsqlEmulator, user: str, token: str, *, sni: str | None = "") -> dict[str, str]:
    """What the emulator answers a client that logs in directly with `token` (TLS, SNI the cluster host)."""
    outcome = rawclient.login(
        (emulator.listen_host, emulator.port),
        user=user,
        password=token,
        sni=emulator.host if sni == "" else sni,
        ca_file=emulator.ca_file,
    )
    assert not outcome.authenticated
    return outcome.error


def serves_normally(proxy: PgProxy, index: int = 0, user: str = "admin") -> None:
    with connect_through(proxy, user, index) as conn:
        assert conn.execute("SELECT current_user, 40 + 2").fetchone() == (user, 42)


def our_fatal(sqlstate: str, message: str, hint: str) -> dict[str, str]:
    return {"S": "FATAL", "V": "FATAL", "C": sqlstate, "M": PROXY_PREFIX + message, "H": hint}


def refused_line(line: dict[str, str], reason: str, user: str = "admin") -> None:
    assert (line["outcome"], line["user"], line["reason"]) == ("refused", user, reason), line
    assert line["peer"].startswith("127.0.0.1:"), line


@pytest.fixture
def superuser_of() -> Iterator[Callable[[DsqlEmulator], Any]]:
    """superuser_of(emulator) -> a psycopg connection to its backend PostgreSQL, bypassing every check."""
    with contextlib.ExitStack() as stack:

        def connect(emulator: DsqlEmulator) -> Any:
            return stack.enter_context(psycopg.connect(emulator.superuser_dsn, autocommit=True))

        yield connect


def backend_sessions(superuser: Any, application_name: str, state: str | None = None) -> int:
    sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    params = [application_name]
    if state is not None:
        sql += " AND state = %s"
        params.append(state)
    return int(superuser.execute(sql, params).fetchone()[0])


def unique(prefix: str) -> str:
    return f"{prefix}_{time.monotonic_ns() % 10**10}"


# ----------------------------------------------------------------------------------- the proxy's own answers


UNREACHABLE_HINT = (
    "check that the endpoint is right and reachable from this machine (security groups, VPC routes, a VPN or SSH "
    "tunnel for private endpoints; --hostaddr points the proxy at a tunnel)"
)
DNS_HINT = (
    "check the hostname (DSQL: <cluster-id>.dsql.<region>.on.aws); a private endpoint resolves only inside its VPC: "
    "use --hostaddr with its IP or a tunnel"
)
SSO_EXPIRED = "the SSO session for profile dev has expired: run aws sso login --profile dev"
CERTIFICATE_HINT = (
    "the upstream's certificate is not trusted by --upstream-sslrootcert or does not name the host: for AWS "
    "endpoints use --upstream-sslrootcert system (Amazon's roots in the machine's store) or a file with Amazon "
    "Root CA 1; through a VPC endpoint without private DNS use --upstream-sslmode verify-ca"
)


def test_upstream_down_is_one_fatal_naming_the_address(
    dsql_off: DsqlEmulator, start_proxy: StartProxy, pg_log: LogCapture, closed_port: int
) -> None:
    proxy = start_proxy(
        emulator_target(dsql_off, hostaddr_port=closed_port), emulator_target(dsql_off), ca_file=dsql_off.ca_file
    )

    outcome = raw_login(proxy)

    message = f"cannot connect to {dsql_off.host} (via 127.0.0.1:{closed_port}): Connection refused"
    assert outcome.error == our_fatal("08001", message, UNREACHABLE_HINT)
    (line,) = pg_log.wait_for_connection_lines(1)
    refused_line(line, f"08001 {PROXY_PREFIX}{message}")
    assert pg_log.warnings() == [f"pg: {dsql_off.host} for {line['peer']}: {PROXY_PREFIX}{message}"]
    counters = proxy.counters()
    assert (counters["refused_upstream_unreachable"], counters["tokens_minted"]) == (1, 0)
    serves_normally(proxy, index=1)


def test_a_psycopg_user_reads_the_cause_and_the_fix(
    dsql_off: DsqlEmulator, start_proxy: StartProxy, closed_port: int
) -> None:
    proxy = start_proxy(emulator_target(dsql_off, hostaddr_port=closed_port), ca_file=dsql_off.ca_file)
    with pytest.raises(psycopg.OperationalError) as failure:
        connect_through(proxy)
    text = str(failure.value)
    assert f"FATAL:  sigv4-proxy: cannot connect to {dsql_off.host} (via 127.0.0.1:{closed_port})" in text
    assert f"HINT:  {UNREACHABLE_HINT}" in text


def test_dns_failure_is_one_fatal_naming_the_host(
    dsql_off: DsqlEmulator, start_proxy: StartProxy, pg_log: LogCapture
) -> None:
    unresolvable = Target("nonexistent.invalid", region="us-east-1", listen_port=0)
    proxy = start_proxy(unresolvable, emulator_target(dsql_off), ca_file=dsql_off.ca_file)

    outcome = raw_login(proxy)

    error = dict(outcome.error)
    message = error.pop("M")
    assert message.startswith(f"{PROXY_PREFIX}cannot resolve nonexistent.invalid: "), message
    assert error == {"S": "FATAL", "V": "FATAL", "C": "08001", "H": DNS_HINT}
    (line,) = pg_log.wait_for_connection_lines(1)
    refused_line(line, f"08001 {message}")
    assert line["target"] == "nonexistent.invalid"
    assert proxy.counters()["refused_upstream_dns"] == 1
    serves_normally(proxy, index=1)


def test_upstream_certificate_of_an_unknown_ca_is_refused_before_any_token(
    dsql: DsqlEmulator, dsql_off: DsqlEmulator, start_proxy: StartProxy, pg_log: LogCapture, tmp_path: Path
) -> None:
    """The root file holds another CA and dsql_off's: dsql's certificate (signed by its own CA) is not trusted."""
    roots = tmp_path / "roots.pem"
    roots.write_text(make_pki(tmp_path / "other").ca_pem.read_text() + dsql_off.ca_file.read_text())
    proxy = start_proxy(emulator_target(dsql), emulator_target(dsql_off), ca_file=roots)

    outcome = raw_login(proxy)

    message = f"TLS with {dsql.host} (via 127.0.0.1:{dsql.port}) failed: unable to get local issuer certificate"
    assert outcome.error == our_fatal("08001", message, CERTIFICATE_HINT)
    (line,) = pg_log.wait_for_connection_lines(1)
    refused_line(line, f"08001 {PROXY_PREFIX}{message}")
    counters = proxy.counters()
    assert (counters["refused_upstream_tls"], counters["tokens_minted"]) == (1, 0)
    serves_normally(proxy, index=1)


def test_credentials_lost_while_running_are_a_fatal_naming_the_fix(
    dsql_off: DsqlEmulator, start_proxy: StartProxy, pg_log: LogCapture, cast: Cast
) -> None:
    credentials = LoadingCredentials(cast.admin, error=None)
    proxy = start_proxy(emulator_target(dsql_off), ca_file=dsql_off.ca_file, credentials=credentials)
    credentials.error = SSO_EXPIRED  # the SSO session ends while the proxy runs

    outcome = raw_login(proxy)

    message = f"cannot sign a token: {SSO_EXPIRED}"
    assert outcome.error == our_fatal("28000", message, "the proxy's AWS credentials: see its log")
    (line,) = pg_log.wait_for_connection_lines(1)
    refused_line(line, f"28000 {PROXY_PREFIX}{message}")
    counters = proxy.counters()
    assert (counters["refused_credentials"], counters["token_failures"], counters["tokens_minted"]) == (1, 1, 0)
    credentials.error = None  # aws sso login
    serves_normally(proxy)


def test_credentials_missing_at_start_fail_the_start_with_the_fix(
    dsql_off: DsqlEmulator, start_proxy: StartProxy, cast: Cast
) -> None:
    credentials = LoadingCredentials(cast.admin, error=SSO_EXPIRED)
    with pytest.raises(PgProxyStartError) as failure:
        start_proxy(emulator_target(dsql_off), ca_file=dsql_off.ca_file, credentials=credentials)
    assert str(failure.value) == SSO_EXPIRED


def test_over_max_connections_the_next_client_gets_53300_from_the_proxy(
    dsql_off: DsqlEmulator, start_proxy: StartProxy, pg_log: LogCapture
) -> None:
    proxy = start_proxy(emulator_target(dsql_off), ca_file=dsql_off.ca_file, max_connections=2)
    first, second = connect_through(proxy), connect_through(proxy)
    with second:
        with first:
            outcome = raw_login(proxy)
            assert outcome.error == our_fatal(
                "53300",
                "too many connections: this proxy allows 2 at once (--max-connections)",
                "close idle connections or use a connection pool; raise --max-connections if the upstream allows",
            )
            assert first.execute("SELECT 1").fetchone() == (1,)
        wait_until_sync(lambda: proxy.counters()["connections_open"] == 1, what="the first client's close")
        serves_normally(proxy)
    lines = pg_log.wait_for_connection_lines(4)
    assert [line["outcome"] for line in lines].count("refused") == 1, lines
    assert proxy.counters()["refused_max_connections"] == 1


def test_a_client_that_sends_nothing_is_cut_after_the_handshake_timeout(
    dsql_off: DsqlEmulator, start_proxy: StartProxy, pg_log: LogCapture
) -> None:
    proxy = start_proxy(emulator_target(dsql_off), ca_file=dsql_off.ca_file, handshake_timeout=0.5)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as silent:
        assert silent.recv(65536) == b""  # closed without a word: the client never spoke the protocol
    waited = time.monotonic() - started
    assert 0.4 <= waited < 5, waited
    (line,) = pg_log.wait_for_connection_lines(1)
    assert (line["outcome"], line["user"], line["reason"]) == ("refused", "-", "no startup packet within 0.5 s")
    assert proxy.counters()["refused_handshake_timeout"] == 1
    serves_normally(proxy)


# ------------------------------------------------------------------------ the upstream's answers, untouched


@pytest.fixture(scope="module")
def expired_session() -> Identity:
    """Session credentials that expired a minute ago: the emulator knows when; the proxy's source hands them out
    without an expiry, as a stale credentials file would."""
    past = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    return generate_identity(role="app", session=True, expires_at=past)


@pytest.fixture(scope="module")
def dsql_strict(dsql: DsqlEmulator, cast: Cast, expired_session: Identity) -> Iterator[DsqlEmulator]:
    """`dsql`'s cluster and backend behind a second front that also knows the expired session credentials."""
    config = DsqlEmulatorConfig(
        identities=(*cast.all(), expired_session),
        deny=frozenset({DENIED_ARN}),
        postgres_url=dsql.superuser_dsn,
        cluster_id=dsql.cluster_id,
    )
    with start_dsql(config) as emulator:
        yield emulator


@dataclass(frozen=True)
class TokenFault:
    """A login the upstream refuses because of what the proxy signed: with which identity, as which user."""

    identity: str  # a Cast attribute, "expired" or "stranger" (a key the cluster does not know)
    user: str  # "admin", or a role made for the test: "missing", "unmapped", "nologin"
    hint: str  # the upstream's HINT; {arn}, {role}, {region}, {cluster_id} filled in
    diagnosis: str | None  # our diagnosis line in the proxy's log (after "pg: diagnosis: "), when we make one
    clock_behind: timedelta = timedelta(0)  # how far the proxy's clock lags


PASSED = (
    "the token passed every inspect check (host {host}, action {action}, region {region}, key {key}): the refusal "
    "comes from IAM or the database — check that the identity's policy allows dsql:{action} on this cluster"
)
CLOCK_OFF = (
    "the upstream says the token's time is wrong although it was signed just now: this machine's clock is off "
    "(compare `date -u` with a time server; enable NTP, e.g. `timedatectl set-ntp true`)"
)
ROLE_CHECK = ", and that role '{role}' exists with LOGIN and is mapped to the identity (AWS IAM GRANT)"

TOKEN_FAULTS = {
    "denied principal": TokenFault(
        "denied",
        "admin",
        "User: {arn} is not authorized to perform: dsql:DbConnectAdmin on resource: "
        "arn:aws:dsql:{region}:123456789012:cluster/{cluster_id} because no identity-based policy allows the "
        "dsql:DbConnectAdmin action",
        PASSED,
    ),
    "role does not exist": TokenFault("app", "missing", "Role {role} does not exist", PASSED + ROLE_CHECK),
    "role not mapped to the principal": TokenFault(
        "app", "unmapped", "IAM principal {arn} is not mapped to role {role}", PASSED + ROLE_CHECK
    ),
    "role without LOGIN": TokenFault(
        "app", "nologin", "role {role} must have the LOGIN attribute", PASSED + ROLE_CHECK
    ),
    "expired session credentials": TokenFault("expired", "admin", 'IAM authentication failed for user "admin"', PASSED),
    "unknown access key": TokenFault(
        "stranger", "admin", "The security token included in the request is invalid.", PASSED
    ),
    "proxy clock behind": TokenFault(
        "admin", "admin", "Signature expired: ", CLOCK_OFF, clock_behind=timedelta(minutes=20)
    ),
}


class Clock:
    """The proxy's clock, `behind` the real one until the test sets it right."""

    def __init__(self, behind: timedelta) -> None:
        self.behind = behind

    def now(self) -> datetime:
        return datetime.now(timezone.utc) - self.behind


def _identity_for(fault: TokenFault, cast: Cast, expired_session: Identity) -> Identity:
    if fault.identity == "expired":
        return expired_session
    if fault.identity == "stranger":
        return generate_identity()
    identity: Identity = getattr(cast, fault.identity)
    return identity


def _user_for(fault: TokenFault, emulator: DsqlEmulator, mapped_role: Callable[..., str]) -> str:
    """The login user: admin, or a role made for this test (mapped to `app` through the emulator, or by hand)."""
    if fault.user == "admin":
        return "admin"
    if fault.user == "missing":
        return unique("no_such_role")
    with psycopg.connect(emulator.superuser_dsn, autocommit=True) as superuser:
        if fault.user == "unmapped":
            name = unique("unmapped_role")
            superuser.execute(f"CREATE ROLE {name} WITH LOGIN")
        else:
            name = mapped_role(emulator)
            superuser.execute(f"ALTER ROLE {name} WITH NOLOGIN")
    return name


@pytest.mark.parametrize("name", list(TOKEN_FAULTS))
def test_token_faults_reach_the_client_untouched_and_are_diagnosed_in_the_log(
    name: str,
    dsql_strict: DsqlEmulator,
    cast: Cast,
    expired_session: Identity,
    mapped_role: Callable[..., str],
    start_proxy: StartProxy,
    pg_log: LogCapture,
) -> None:
    fault, emulator = TOKEN_FAULTS[name], dsql_strict
    identity = _identity_for(fault, cast, expired_session)
    user = _user_for(fault, emulator, mapped_role)
    credentials, clock = SwitchableCredentials(identity), Clock(fault.clock_behind)
    proxy = start_proxy(emulator_target(emulator), ca_file=emulator.ca_file, credentials=credentials, now=clock.now)

    outcome = raw_login(proxy, user=user)

    action = "DbConnectAdmin" if user == "admin" else "DbConnect"
    values = {
        "arn": identity.principal_arn,
        "role": user,
        "region": emulator.region,
        "cluster_id": emulator.cluster_id,
        "host": emulator.host,
        "action": action,
        "key": credentials_of(identity).masked_access_key,
    }
    hint = fault.hint.format(**values)
    error = outcome.error
    assert (error["S"], error["C"], error["M"]) == ("FATAL", "08006", ACCESS_DENIED), error
    assert error["H"].startswith(hint), error
    if not fault.clock_behind:  # the same token signed by the client itself gets the very same answer
        token = dsql_token(emulator.host, emulator.region, admin=user == "admin", credentials=credentials_of(identity))
        assert error == direct_refusal(emulator, user, token)

    (line,) = pg_log.wait_for_connection_lines(1)
    refused_line(line, f"08006 {ACCESS_DENIED}", user=user)
    warnings = pg_log.warnings()
    assert (
        warnings[0]
        == f"pg: {emulator.host} refused {line['peer']} (user {user}): 08006 {ACCESS_DENIED} (hint: {error['H']})"
    )
    if fault.diagnosis is not None:
        assert warnings[1:] == [f"pg: diagnosis: {fault.diagnosis.format(**values)}"]
    else:
        assert len(warnings) == 2 and warnings[1].startswith("pg: diagnosis: "), warnings
    counters = proxy.counters()
    assert (counters["refused_upstream_refused"], counters["tokens_minted"]) == (1, 1)
    assert_no_secrets(pg_log.messages(), (identity, *cast.all()))

    credentials.identity, clock.behind = cast.admin, timedelta(0)
    serves_normally(proxy)


def test_a_region_that_contradicts_the_host_is_our_fatal_and_no_token_leaves(
    dsql: DsqlEmulator, start_proxy: StartProxy, pg_log: LogCapture
) -> None:
    """The token library refuses to sign for a region the DSQL host name contradicts (AWS would refuse the token):
    so the wrong region never reaches the upstream; the client must hear why, not see a bare close."""
    proxy = start_proxy(emulator_target(dsql, region="eu-west-1"), emulator_target(dsql), ca_file=dsql.ca_file)

    outcome = raw_login(proxy)

    message = (
        f"cannot sign a token: region 'eu-west-1' does not match host '{dsql.host}', which is in '{dsql.region}': "
        f"the token would be rejected; use --region {dsql.region} (or omit it)"
    )
    assert (outcome.error["S"], outcome.error["C"], outcome.error["M"]) == ("FATAL", "28000", PROXY_PREFIX + message)
    (line,) = pg_log.wait_for_connection_lines(1)
    refused_line(line, f"28000 {PROXY_PREFIX}{message}")
    assert proxy.counters()["tokens_minted"] == 0
    serves_normally(proxy, index=1)


def test_no_server_name_gets_dsqls_own_refusal(dsql: DsqlEmulator, start_proxy: StartProxy, pg_log: LogCapture) -> None:
    """A target named by its IP address: TLS carries no server name (SNI) and DSQL refuses before any token."""
    by_address = emulator_target(dsql, hostname="127.0.0.1", region=dsql.region)
    proxy = start_proxy(by_address, emulator_target(dsql), ca_file=dsql.ca_file)

    outcome = raw_login(proxy)

    assert outcome.error == direct_refusal(dsql, "admin", "not sent", sni=None)
    assert outcome.error["M"] == "unable to accept connection, sni was not received"
    assert outcome.error["D"].startswith("the TLS handshake named no server: connect with the cluster host name")
    (line,) = pg_log.wait_for_connection_lines(1)
    refused_line(line, "08006 unable to accept connection, sni was not received")
    assert pg_log.warnings() == [
        f"pg: 127.0.0.1 refused {line['peer']} (user admin): 08006 unable to accept connection, sni was not received"
    ]
    assert proxy.counters()["tokens_minted"] == 0
    serves_normally(proxy, index=1)


def test_another_clusters_name_gets_dsqls_refusal(
    dsql: DsqlEmulator, start_proxy: StartProxy, pg_log: LogCapture
) -> None:
    """A target named as another cluster but dialled at this one (a wrong --hostaddr). verify-ca lets TLS pass (the
    certificate does not name the other cluster), so that DSQL, not the certificate check, answers."""
    other = f"{'z' * 26}.dsql.{dsql.region}.on.aws"
    proxy = start_proxy(
        emulator_target(dsql, hostname=other), emulator_target(dsql), ca_file=dsql.ca_file, upstream_sslmode="verify-ca"
    )

    outcome = raw_login(proxy)

    assert outcome.error == direct_refusal(dsql, "admin", "not sent", sni=other)
    assert outcome.error["H"] == (
        f"this endpoint serves cluster {dsql.cluster_id} in {dsql.region} ({dsql.host}), not the server name '{other}'"
    )
    (line,) = pg_log.wait_for_connection_lines(1)
    refused_line(line, f"08006 {ACCESS_DENIED}")
    assert pg_log.warnings()[0].startswith(f"pg: {other} refused {line['peer']} (user admin): 08006 {ACCESS_DENIED}")
    serves_normally(proxy, index=1)


# ------------------------------------------------------------------------------------------ broken sessions


def test_client_vanishing_mid_copy_ends_the_upstream_session(
    dsql_off: DsqlEmulator, start_proxy: StartProxy, superuser_of: Any, pg_log: LogCapture
) -> None:
    marker = unique("vanishing_mid_copy")
    superuser = superuser_of(dsql_off)
    proxy = start_proxy(emulator_target(dsql_off), ca_file=dsql_off.ca_file)
    conn = connect_through(proxy, application_name=marker)
    conn.execute("CREATE TABLE IF NOT EXISTS fault_copy (body text)")
    with contextlib.suppress(psycopg.Error), conn.cursor() as cursor, cursor.copy("COPY fault_copy FROM STDIN") as copy:
        copy.write(("x" * 1000 + "\n") * 1024)  # a megabyte on its way, then the client is gone
        wait_until_sync(lambda: backend_sessions(superuser, marker, "active") == 1, what="the COPY to run")
        client_socket = socket.socket(fileno=conn.pgconn.socket)
        client_socket.shutdown(socket.SHUT_RDWR)
        client_socket.detach()
        wait_until_sync(lambda: backend_sessions(superuser, marker) == 0, timeout=5, what="the backend session to end")
    with contextlib.suppress(psycopg.Error):
        conn.close()
    (line,) = pg_log.wait_for_connection_lines(1)
    assert (line["outcome"], line["reason"]) == ("ok", ""), line
    assert proxy.counters()["connections_open"] == 0
    serves_normally(proxy)


def test_upstream_session_terminated_mid_query_is_an_error_not_a_hang(
    dsql_off: DsqlEmulator, start_proxy: StartProxy, superuser_of: Any, pg_log: LogCapture
) -> None:
    marker = unique("terminated_mid_query")
    superuser = superuser_of(dsql_off)
    proxy = start_proxy(emulator_target(dsql_off), ca_file=dsql_off.ca_file)

    def terminate_when_running() -> None:
        wait_until_sync(lambda: backend_sessions(superuser, marker, "active") == 1, what="the query to run")
        superuser.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (marker,)
        )

    terminator = threading.Thread(target=terminate_when_running, daemon=True)
    with connect_through(proxy, application_name=marker) as conn:
        terminator.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.AdminShutdown) as failure:
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 10
        assert failure.value.sqlstate == "57P01"
        assert failure.value.diag.message_primary == "terminating connection due to administrator command"
    terminator.join(10)
    (line,) = pg_log.wait_for_connection_lines(1)
    assert line["outcome"] == "ok", line
    assert proxy.counters()["connections_open"] == 0
    serves_normally(proxy)

"""How the load test reaches the cluster (its users, and its own DDL and count), and how a failure is told.

A connection is :func:`sigv4_proxy.dsql.connect`: a fresh token per physical connection, or no token for a
`sigv4-proxy pg` port (:attr:`DsqlTarget.mint_tokens` False: the proxy signs upstream).

A failure becomes a :class:`Failure`: its SQLSTATE, the server's words (DETAIL and HINT after them, secrets
masked, never the token), and for a refused login the `inspect` diagnosis of the token that was sent.

psycopg is imported inside the functions: importing this module must not import psycopg before locust.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sigv4_proxy.loadtest.settings import DsqlTarget, LoadtestSettings

if TYPE_CHECKING:  # pragma: no cover
    import psycopg

    from sigv4_proxy.credentials import CredentialSource

SQLSTATE_UNKNOWN = "-----"  # a failure without one: a dropped connection, a timeout, a client-side error
CONNECT_TIMEOUT = 10  # seconds: libpq's connect_timeout for every connection the load test opens
APPLICATION_NAME = "sigv4-proxy-loadtest"  # the users' sessions, as pg_stat_activity shows them
SETUP_APPLICATION_NAME = "sigv4-proxy-loadtest-setup"  # the sessions that create the table and count the rows
# libpq reports no SQLSTATE for a refused login (psycopg gets the message only), so the refusals a DSQL cluster,
# `sigv4-proxy pg` or PostgreSQL send are recognised by their text. DSQL's access denied is 08006 (as pgx shows).
_LOGIN_REFUSALS: tuple[tuple[str, str], ...] = (
    ("unable to accept connection, access denied", "08006"),
    ("password authentication failed", "28P01"),
    ("cannot sign a token", "28000"),
    ("too many open connections", "53300"),
    ("too many clients", "53300"),
    ("SSL is required", "08P01"),
)
# 'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  ' in front of the server's
# message (libpq's and psycopg's prefixes; the address is ours, not the server's, and varies per connection).
_CONNECT_PREFIX = re.compile(
    r'^(?:connection failed: )?(?:connection to server (?:at|on socket) "[^"]*"(?: \([^)]*\))?(?:, port \d+)? '
    r"failed: )?(?:(?:FATAL|ERROR): +)?"
)
_FAILURE_TEXT = re.compile(r"^SQLSTATE (?P<sqlstate>\S+): (?P<message>.*)$", re.DOTALL)


@dataclass(frozen=True)
class Failure:
    sqlstate: str
    message: str  # the server's message, then its DETAIL and HINT lines; secrets masked
    login_refused: bool = False
    diagnosis: tuple[str, ...] = ()  # the `inspect` findings on the token a refused login sent

    def text(self) -> str:
        """One line: what Locust groups its failures by (``SQLSTATE 23505: duplicate key value ...``)."""
        return f"SQLSTATE {self.sqlstate}: " + " ".join(line.strip() for line in self.message.splitlines())


class DsqlFailure(Exception):
    """The exception a failed operation reports to Locust. Its repr is its text: Locust keys (and, from a worker,
    ships) failures by ``repr(exception)``, and the text must group by SQLSTATE and message only."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.text())
        self.failure = failure

    def __repr__(self) -> str:
        return str(self)


def parse_failure_text(text: str) -> tuple[str, str]:
    """(SQLSTATE, message) back from :meth:`Failure.text` (as a master receives it from a worker)."""
    match = _FAILURE_TEXT.match(text)
    if match is None:
        return SQLSTATE_UNKNOWN, text
    return match["sqlstate"], match["message"]


def credentials_for(settings: LoadtestSettings) -> CredentialSource | None:
    """The credentials this process signs with: the throwaway identity of an emulator the load test started, or
    one refreshing provider for the profile (the default chain), shared by every user; None without tokens."""
    if settings.emulator_identity:
        from sigv4_proxy.credentials import StaticCredentialProvider
        from sigv4_proxy.emulate.dsql.auth import parse_identity
        from sigv4_proxy.signing.model import Credentials

        identity = parse_identity(settings.emulator_identity)
        credentials = Credentials(identity.access_key_id, identity.secret_access_key, identity.session_token)
        return StaticCredentialProvider(credentials, method="emulate dsql")
    if settings.target is None or not settings.target.mint_tokens:
        return None
    from sigv4_proxy.credentials import CredentialProvider

    return CredentialProvider(settings.target.profile)


def warm_up(credentials: CredentialSource | None) -> None:
    """Load what the first connection would (the driver helpers, psycopg, the credentials: botocore, maybe SSO
    or STS), so that its latency is the login's, not the imports'. A credentials failure is left for the users'
    connects to report."""
    import sigv4_proxy.dsql
    from sigv4_proxy.errors import CredentialsError

    # The package's lazy exports, imported on first use; DsqlConnection brings psycopg (and libpq) in.
    for name in ("connect", "DsqlConnection", "run_transaction", "RetryStats", "diagnosis_of"):
        getattr(sigv4_proxy.dsql, name)
    if credentials is not None:
        with contextlib.suppress(CredentialsError):
            credentials.get()


def open_connection(
    target: DsqlTarget, credentials: CredentialSource | None, *, setup: bool = False
) -> psycopg.Connection[Any]:
    """One physical connection in autocommit mode (each transaction is an explicit block of run_transaction);
    `setup`: the load test's own (table, count), told apart from the users' by its application name."""
    from sigv4_proxy.dsql import connect

    libpq: dict[str, Any] = {
        "port": target.port,
        "sslmode": target.sslmode,
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": SETUP_APPLICATION_NAME if setup else APPLICATION_NAME,
    }
    if target.sslmode != "disable":
        libpq["sslrootcert"] = target.sslrootcert
    hostaddr = target.hostaddr or resolve_address(target.hostname, target.port)
    if hostaddr:
        libpq["hostaddr"] = hostaddr
    if not target.mint_tokens and target.password is not None:
        libpq["password"] = target.password
    return connect(
        target.hostname,
        target.user,
        target.dbname,
        region=target.region,
        profile=target.profile,
        expires_in=target.expires_in,
        credentials=credentials,
        cluster_id=target.cluster_id,
        iam_auth=target.mint_tokens,
        autocommit=True,
        **libpq,
    )


def resolve_address(hostname: str, port: int) -> str | None:
    """The host's first address, looked up with Python's resolver, or None (an IP already, or a name that does not
    resolve: libpq then says so in its own words). Why: libpq resolves names with a blocking getaddrinfo, which
    under gevent stops every user while one connects; Python's, patched by gevent, lets the others run."""
    import ipaddress
    import socket

    with contextlib.suppress(ValueError):
        ipaddress.ip_address(hostname)
        return None
    try:
        addresses = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return str(addresses[0][4][0]) if addresses else None


def describe_failure(exc: BaseException, *, connecting: bool) -> Failure:
    """What went wrong, fit for a report: SQLSTATE, the server's words (secrets masked), and for a refused
    login the diagnosis of the token sent."""
    from sigv4_proxy.redact import redact

    sqlstate, message = _sqlstate_and_message(exc)
    message = redact(message)
    if not connecting:
        return Failure(sqlstate, message)
    diagnosis = _diagnosis(exc)
    refused = bool(diagnosis) or sqlstate == "08006" or sqlstate.startswith("28")
    return Failure(sqlstate, message, login_refused=refused, diagnosis=diagnosis)


def _sqlstate_and_message(exc: BaseException) -> tuple[str, str]:
    sqlstate = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if sqlstate and primary:  # the server's error, field by field
        lines = [primary]
        for label, field in (("DETAIL", "message_detail"), ("HINT", "message_hint")):
            value = getattr(diag, field, None)
            if value:
                lines.append(f"{label}: {value}")
        return sqlstate, "\n".join(lines)
    text = _CONNECT_PREFIX.sub("", str(exc).strip()) or type(exc).__name__
    text = "\n".join(re.sub(r"^(DETAIL|HINT): +", r"\1: ", line) for line in text.splitlines())
    return sqlstate or _refusal_sqlstate(text), text


def _refusal_sqlstate(text: str) -> str:
    first_line = text.splitlines()[0] if text else ""
    for words, sqlstate in _LOGIN_REFUSALS:
        if words in first_line:
            return sqlstate
    return SQLSTATE_UNKNOWN


def _diagnosis(exc: BaseException) -> tuple[str, ...]:
    try:
        from sigv4_proxy.dsql import diagnosis_of
    except ImportError:  # pragma: no cover - the package ships with sigv4_proxy
        return ()
    from sigv4_proxy.redact import redact

    return tuple(redact(line) for line in diagnosis_of(exc))


def connection_unusable(connection: psycopg.Connection[Any]) -> bool:
    """Closed, broken (the server or the network went away), or stuck in a transaction it cannot leave."""
    from psycopg import pq

    if connection.closed or connection.broken:
        return True
    return connection.info.transaction_status not in (pq.TransactionStatus.IDLE,)

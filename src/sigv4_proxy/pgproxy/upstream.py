"""The upstream leg of `sigv4-proxy pg`: dial, TLS (verify-full and SNI), log in with a fresh token.

:func:`open_upstream` returns an :class:`UpstreamLogin` (the connection and the server's start-up messages to pass
on to the client) or raises :class:`UpstreamFailure`: either the upstream's own ErrorResponse (``refusal``,
passed to the client untouched) or one of ours, a FATAL that names the cause and the fix (dead upstream, DNS,
TLS, timeout, an upstream that is not an IAM endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sigv4_proxy.pg import handshake as hs
from sigv4_proxy.pg import protocol as pgp
from sigv4_proxy.pg.connection import Connection
from sigv4_proxy.pgproxy.config import PgProxyConfig, Target

PREFIX = "sigv4-proxy: "
SQLSTATE_CANNOT_CONNECT = "08001"
ALPN_POSTGRESQL = "postgresql"


def fatal(sqlstate: str, message: str, *, hint: str | None = None, detail: str | None = None) -> list[tuple[str, str]]:
    return pgp.error_fields("FATAL", sqlstate, PREFIX + message, hint=hint, detail=detail)


class UpstreamFailure(Exception):
    """The login upstream failed. ``reason`` labels the metric; ``fields`` is the ErrorResponse for the client;
    ``raw`` is set when the upstream itself refused (its bytes, passed on untouched)."""

    def __init__(self, reason: str, fields: list[tuple[str, str]], raw: bytes | None = None) -> None:
        super().__init__(dict(fields).get("M", reason))
        self.reason = reason
        self.fields = fields
        self.raw = raw


@dataclass
class UpstreamLogin:
    connection: Connection
    messages: list[bytes]  # after AuthenticationOk: ParameterStatus..., BackendKeyData, ReadyForQuery (raw, in order)
    backend_key: tuple[int, bytes] | None
    connect_seconds: float = 0.0


def client_context(config: PgProxyConfig, *, direct: bool = False) -> ssl.SSLContext:
    """The TLS context for upstream connections: the machine's roots (``system``) or a PEM file, hostname checked
    under verify-full; TLS 1.2 or newer. Direct TLS negotiation (PostgreSQL 17) requires ALPN ``postgresql``."""
    root = config.upstream_sslrootcert
    if root == "system":
        context = ssl.create_default_context()
    else:
        context = ssl.create_default_context(cafile=str(Path(root).expanduser()))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = config.upstream_sslmode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED
    if direct:
        context.set_alpn_protocols([ALPN_POSTGRESQL])
    return context


def startup_params(target: Target, client_params: Mapping[str, str]) -> dict[str, str]:
    """The client's parameters (user, database, options, application_name, ...) with what the target adds."""
    params = dict(client_params)
    extra = target.extra_options
    if extra:
        params["options"] = f"{params['options']} {extra}" if params.get("options") else extra
    return params


async def open_upstream(
    target: Target,
    params: Mapping[str, str],
    *,
    protocol_version: int,
    context: ssl.SSLContext,
    direct: bool,
    timeout: float,
    password: Callable[[], Awaitable[str]],
    keepalive: float = 30.0,
) -> UpstreamLogin:
    """Connect, TLS, start-up and login, all within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        connection = await asyncio.wait_for(_connect_tls(target, context, direct=direct, keepalive=keepalive), timeout)
    except asyncio.TimeoutError:
        raise _timeout(target, timeout, "connecting") from None
    connect_seconds = loop.time() - started
    try:
        remaining = max(0.1, timeout - connect_seconds)
        login = await asyncio.wait_for(
            _login(connection, startup_params(target, params), protocol_version, password, target), remaining
        )
    except asyncio.TimeoutError:
        connection.close()
        raise _timeout(target, timeout, "logging in") from None
    except BaseException:
        connection.close()
        raise
    login.connect_seconds = connect_seconds
    return login


async def _connect_tls(target: Target, context: ssl.SSLContext, *, direct: bool, keepalive: float = 30.0) -> Connection:
    loop = asyncio.get_running_loop()
    connection = Connection()
    server_name = target.hostname
    try:
        if direct:
            await loop.create_connection(
                lambda: connection, target.dial_host, target.dial_port, ssl=context, server_hostname=server_name
            )
        else:
            await loop.create_connection(lambda: connection, target.dial_host, target.dial_port)
            await _negotiate_tls(connection, target)
            assert connection.transport is not None
            # The protocol object stays ours; the returned transport is the TLS one (uvloop wraps differently).
            connection.transport = await loop.start_tls(
                connection.transport, connection, context, server_hostname=server_name
            )
    except socket.gaierror as exc:
        connection.close()
        raise _dns_failure(target, exc) from None
    except ssl.SSLCertVerificationError as exc:
        connection.close()
        raise _tls_failure(target, exc.verify_message or str(exc), certificate=True) from None
    except ssl.SSLError as exc:
        connection.close()
        raise _tls_failure(target, exc.reason or str(exc), certificate=False) from None
    except (ConnectionError, OSError) as exc:
        connection.close()
        raise _unreachable(target, exc) from None
    tune(connection, keepalive)
    return connection


async def _negotiate_tls(connection: Connection, target: Target) -> None:
    connection.write(pgp.ssl_request())
    answer = await connection.read()
    if not answer:
        raise _unreachable(target, ConnectionResetError("the server closed the connection at the SSLRequest"))
    if answer[:1] == b"N":
        raise UpstreamFailure(
            "upstream_tls",
            fatal(
                SQLSTATE_CANNOT_CONNECT,
                f"{target.hostname} does not offer TLS: IAM authentication needs it, so no token was sent",
                hint="check the hostname and port: Aurora DSQL and RDS endpoints always offer TLS",
            ),
        )
    if answer != b"S":
        # Bytes after 'S' would be read as if they came through TLS (CVE-2021-23214's client-side twin).
        raise UpstreamFailure(
            "protocol",
            fatal(SQLSTATE_CANNOT_CONNECT, f"{target.hostname} answered the SSLRequest with unexpected bytes"),
        )


def tune(connection: Connection, keepalive: float) -> None:
    """TCP_NODELAY (each protocol message goes out at once: Nagle's delay would add up to 40 ms to a round trip)
    and keepalive probes after ``keepalive`` idle seconds (a dead peer or a NAT that forgot the flow is noticed)."""
    sock = connection.transport.get_extra_info("socket") if connection.transport is not None else None
    if sock is None or sock.family == socket.AF_UNIX:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; macOS names it TCP_KEEPALIVE
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(keepalive)))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


async def _login(
    connection: Connection,
    params: Mapping[str, str],
    protocol_version: int,
    password: Callable[[], Awaitable[str]],
    target: Target,
) -> UpstreamLogin:
    machine = hs.ClientHandshake(params, protocol=protocol_version)
    connection.write(machine.start())
    messages: list[bytes] = []
    while True:
        data = await connection.read()
        if not data:
            raise _closed_during_login(target)
        for event in machine.receive(data):
            if isinstance(event, hs.PasswordRequested):
                if event.method != "cleartext":
                    raise _not_iam(target, event.method)
                connection.write(machine.password(await password()))
            elif isinstance(event, hs.ServerError):
                raise UpstreamFailure("upstream_refused", list(event.fields), event.raw)
            elif isinstance(event, hs.SASLChallenge):
                raise _not_iam(target, "sasl")
            elif isinstance(event, hs.Ready):
                messages.append(event.raw)
                connection.unread(machine.leftover())
                return UpstreamLogin(connection, messages, machine.backend_key)
            elif not isinstance(event, hs.AuthenticationOk):  # the client gets its own AuthenticationOk from us
                messages.append(event.raw)  # ParameterStatus, BackendKeyData, NoticeResponse


async def send_cancel(target: Target, context: ssl.SSLContext, *, direct: bool, pid: int, secret: bytes) -> None:
    """Forward a CancelRequest to the upstream, inside TLS (DSQL accepts nothing in plaintext)."""
    connection = await asyncio.wait_for(_connect_tls(target, context, direct=direct), 10)
    try:
        connection.write(pgp.cancel_request(pid, secret))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(connection.read(), 5)  # the server closes once it has the request
    finally:
        connection.close()


async def probe(target: Target, context: ssl.SSLContext, *, direct: bool, timeout: float) -> str:
    """TCP + TLS to the upstream, no login (readiness): '' when fine, else the failure's message."""
    try:
        connection = await asyncio.wait_for(_connect_tls(target, context, direct=direct), timeout)
    except asyncio.TimeoutError:
        return str(_timeout(target, timeout, "connecting"))
    except UpstreamFailure as failure:
        return str(failure)
    connection.close()
    return ""


# -- what the client is told ------------------------------------------------------------------------------------


def _where(target: Target) -> str:
    if target.hostaddr:
        return f"{target.hostname} (via {target.dial_host}:{target.dial_port})"
    return f"{target.hostname}:{target.dial_port}"


def _unreachable(target: Target, exc: BaseException) -> UpstreamFailure:
    cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    return UpstreamFailure(
        "upstream_unreachable",
        fatal(
            SQLSTATE_CANNOT_CONNECT,
            f"cannot connect to {_where(target)}: {cause}",
            hint="check that the endpoint is right and reachable from this machine (security groups, VPC routes, "
            "a VPN or SSH tunnel for private endpoints; --hostaddr points the proxy at a tunnel)",
        ),
    )


def _dns_failure(target: Target, exc: socket.gaierror) -> UpstreamFailure:
    return UpstreamFailure(
        "upstream_dns",
        fatal(
            SQLSTATE_CANNOT_CONNECT,
            f"cannot resolve {target.dial_host}: {exc.strerror or exc}",
            hint="check the hostname (DSQL: <cluster-id>.dsql.<region>.on.aws); a private endpoint resolves only "
            "inside its VPC: use --hostaddr with its IP or a tunnel",
        ),
    )


def _tls_failure(target: Target, cause: str, *, certificate: bool) -> UpstreamFailure:
    hint = (
        "the upstream's certificate is not trusted by --upstream-sslrootcert or does not name the host: for AWS "
        "endpoints use --upstream-sslrootcert system (Amazon's roots in the machine's store) or a file with Amazon "
        "Root CA 1; through a VPC endpoint without private DNS use --upstream-sslmode verify-ca"
        if certificate
        else "the TLS handshake failed: check that the port is the database's (5432) and not a load balancer's"
    )
    return UpstreamFailure(
        "upstream_tls", fatal(SQLSTATE_CANNOT_CONNECT, f"TLS with {_where(target)} failed: {cause}", hint=hint)
    )


def _timeout(target: Target, seconds: float, doing: str) -> UpstreamFailure:
    return UpstreamFailure(
        "upstream_timeout",
        fatal(
            SQLSTATE_CANNOT_CONNECT,
            f"no answer from {_where(target)} within {seconds:g} s ({doing})",
            hint="check that the endpoint is reachable from this machine; raise --connect-timeout for slow links",
        ),
    )


def _closed_during_login(target: Target) -> UpstreamFailure:
    return UpstreamFailure(
        "upstream_refused",
        fatal(SQLSTATE_CANNOT_CONNECT, f"{_where(target)} closed the connection during login without an error"),
    )


def _not_iam(target: Target, method: str) -> UpstreamFailure:
    return UpstreamFailure(
        "upstream_refused",
        fatal(
            "28000",
            f"{_where(target)} asked for a {method} password, not an IAM token",
            hint="IAM authentication is off for this user or server: on RDS, GRANT rds_iam TO the user and enable "
            "IAM database authentication; the proxy only ever answers with an IAM token",
        ),
    )

"""The client side of `sigv4-proxy pg`: listeners, the start-up handshake, bounds, the relay, cancels, drain.

Each target has a listener (TCP, or a unix socket ``DIR/.s.PGSQL.<port>``). A client's start-up is read with the
sans-IO :class:`~sigv4_proxy.pg.handshake.ServerHandshake` (SSLRequest answered ``N`` or with TLS when
configured, GSSENC ``N``, CancelRequest forwarded); then the upstream is dialled and logged in with a fresh token
(:mod:`.upstream`), the client gets ``AuthenticationOk`` and the upstream's start-up messages, and from then on
bytes are relayed both ways as they come: no parsing, one ``transport.write`` per chunk, back-pressure from the
slower side, half-closes passed on where the other side's transport can express one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import os
import socket
import ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sigv4_proxy.endpoints import host_port
from sigv4_proxy.errors import CredentialsError, Sigv4ProxyError
from sigv4_proxy.pg import handshake as hs
from sigv4_proxy.pg import protocol as pgp
from sigv4_proxy.pg.connection import Connection
from sigv4_proxy.pgproxy.config import DEFAULT_PORT, PgProxyConfig, Target
from sigv4_proxy.pgproxy.tokens import TokenMinter, diagnose
from sigv4_proxy.pgproxy.upstream import (
    UpstreamFailure,
    client_context,
    fatal,
    open_upstream,
    send_cancel,
    tune,
)

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.pgproxy.health import ProxyMetrics

_log = logging.getLogger("sigv4_proxy.pg")
HEADER_SIZE = 5  # a protocol message's type byte and length
EOF_GRACE = 3.0  # after a client's EOF, how long the upstream may stay silent before the proxy closes it
CLOCK_HINTS = ("Signature expired", "Signature not yet current")  # DSQL's hints (dsql-tokens.md)
BACKLOG = 512


@dataclass(frozen=True)
class Listener:
    target: Target
    host: str
    port: int
    unix_path: str | None = None

    @property
    def address(self) -> str:
        return self.unix_path or host_port(self.host, self.port)


@dataclass(eq=False)  # identity semantics: sessions live in a set
class _Session:
    """One client from accept to close (what the log line and the metrics say about it)."""

    target: Target
    peer: str
    started: float
    user: str = ""
    database: str = ""
    outcome: str = "failed"
    reason: str = ""
    bytes_up: int = 0
    bytes_down: int = 0
    relay: _Relay | None = None
    key: tuple[int, bytes] | None = field(default=None, repr=False)


class _MessageEdge:
    """Whether the client's byte stream stands between two protocol messages: the 5-byte headers are skipped by
    their length fields, no message is read. Needed only to end a session cleanly at the client's EOF."""

    __slots__ = ("_header", "_remaining")

    def __init__(self) -> None:
        self._remaining = 0  # bytes left of the current message's body
        self._header = b""  # a header split across chunks

    def feed(self, data: bytes) -> None:
        position, size = 0, len(data)
        while position < size:
            if self._remaining:
                step = min(self._remaining, size - position)
                self._remaining -= step
                position += step
                continue
            needed = HEADER_SIZE - len(self._header)
            self._header += data[position : position + needed]
            position += needed
            if len(self._header) == HEADER_SIZE:
                self._remaining = int.from_bytes(self._header[1:], "big") - 4
                self._header = b""

    @property
    def between_messages(self) -> bool:
        return not self._remaining and not self._header


class _Relay:
    """Bytes both ways after login. The sinks are closures over the peer's transport: one call per chunk.

    A client's EOF (a half-close, or a client that died without Terminate) cannot be passed on as one: TLS has no
    half-close in asyncio. PostgreSQL finishes what a half-closed client sent before it ends the session, so the
    proxy does what makes the upstream do the same: between two messages it sends Terminate and keeps relaying
    the answers until the upstream closes, or has been silent for :data:`EOF_GRACE` seconds (a COPY cut short
    takes the Terminate as an error and waits). Inside a message nothing can be finished: both sides close."""

    def __init__(self, session: _Session, client: Connection, upstream: Connection, done: Callable[[], None]):
        self.session = session
        self.client = client
        self.upstream = upstream
        self._done = done
        self._finished = False
        self._edge = _MessageEdge()
        client.peer, upstream.peer = upstream, client

    def start(self) -> None:
        session, edge = self.session, self._edge
        up = self.upstream.transport
        down = self.client.transport
        assert up is not None and down is not None

        def to_upstream(data: bytes) -> None:
            session.bytes_up += len(data)
            edge.feed(data)
            up.write(data)

        def to_client(data: bytes) -> None:
            session.bytes_down += len(data)
            down.write(data)

        self.upstream.attach(to_client, self._closed, self._upstream_eof)
        self.client.attach(to_upstream, self._closed, self._client_eof)

    def _client_eof(self) -> bool:
        if self.upstream.eof:
            self._closed()
            return False
        transport = self.upstream.transport
        if transport is not None and transport.can_write_eof():  # a plain upstream: the half-close itself
            with contextlib.suppress(OSError, RuntimeError):
                transport.write_eof()
                return True
        if transport is None or not self._edge.between_messages:
            self._closed()
            return False
        transport.write(pgp.terminate())
        self._watch_answers()
        return True  # the client side stays open: the answers to what it sent still reach it

    def _watch_answers(self) -> None:
        loop = asyncio.get_running_loop()
        bytes_before = self.session.bytes_down

        def check() -> None:
            nonlocal bytes_before
            if self._finished:
                return
            if self.session.bytes_down == bytes_before:
                self._closed()  # silent since the last check: nothing more is coming
                return
            bytes_before = self.session.bytes_down
            loop.call_later(EOF_GRACE, check)

        loop.call_later(EOF_GRACE, check)

    def _upstream_eof(self) -> bool:
        """The upstream ended the session: the client gets the rest, then a FIN (a TCP or unix client)."""
        if self.client.eof:
            self._closed()
            return False
        transport = self.client.transport
        if transport is not None and transport.can_write_eof() and not self.client.closed:
            with contextlib.suppress(OSError, RuntimeError):
                transport.write_eof()
                return True
        self._closed()
        return False

    def _closed(self) -> None:
        if self._finished:
            return
        self._finished = True
        self.client.close()
        self.upstream.close()
        self._done()

    def cut(self) -> None:
        if self.client.transport is not None:
            self.client.transport.abort()
        if self.upstream.transport is not None:
            self.upstream.transport.abort()
        self._closed()


class Door:
    """Every listener of one proxy and the sessions behind them (runs on one event loop)."""

    def __init__(self, config: PgProxyConfig, minter: TokenMinter, metrics: ProxyMetrics) -> None:
        self.config = config
        self.minter = minter
        self.metrics = metrics
        self.listeners: list[Listener] = []
        self.draining = False
        self.sessions: set[_Session] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._keys: dict[int, tuple[bytes, Target]] = {}
        self.upstream_tls = client_context(config, direct=config.direct_tls)
        self._client_tls = _server_context(config) if config.tls_cert is not None else None
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_count: Callable[[int], None] = lambda count: None
        self.sessions_cut = 0

    # -- listeners --------------------------------------------------------------------------------------------

    def bind(self) -> list[Listener]:
        """Bind every target's socket now (so a port in use fails the start, before any client is told)."""
        for index, target in enumerate(self.config.targets):
            port = self.config.listen_port_of(index)
            if self.config.unix_socket_dir is not None:
                port = port or DEFAULT_PORT + index  # libpq names sockets by port, and 0 is not one
                path = str(Path(self.config.unix_socket_dir) / f".s.PGSQL.{port}")
                self._sockets.append(_bind_unix(path))
                self.listeners.append(Listener(target, "", port, path))
            else:
                sock = _bind_tcp(self.config.listen_host, port)
                self._sockets.append(sock)
                self.listeners.append(Listener(target, self.config.listen_host, sock.getsockname()[1]))
        return self.listeners

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for listener, sock in zip(self.listeners, self._sockets, strict=True):
            factory = functools.partial(_ClientConnection, self, listener.target)
            if listener.unix_path is not None:
                server = await loop.create_unix_server(factory, sock=sock)
            else:
                server = await loop.create_server(factory, sock=sock)
            self._servers.append(server)

    async def aclose(self) -> None:
        for server in self._servers:
            server.close()
        for session in list(self.sessions):
            if session.relay is not None:
                session.relay.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for listener in self.listeners:
            if listener.unix_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(listener.unix_path)

    async def drain(self, timeout: float) -> int:
        """Refuse new clients (FATAL 57P03), wait up to ``timeout`` for open sessions, cut the rest; returns how
        many sessions were cut (here or by a :meth:`cut_all` meanwhile: a second signal)."""
        self.draining = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        self.cut_all()
        return self.sessions_cut

    def cut_all(self) -> None:
        for session in list(self.sessions):
            if session.relay is not None:
                session.reason = "cut: the proxy is stopping"
                session.relay.cut()
                self.sessions_cut += 1

    def live_bytes(self) -> list[tuple[str, int, int]]:
        """Called from the metrics scrape thread: list() copies the set in one step under the GIL."""
        return [(s.target.name, s.bytes_up, s.bytes_down) for s in list(self.sessions)]

    # -- one client -----------------------------------------------------------------------------------------------

    def accepted(self, client: Connection, target: Target) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(client, target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, client: Connection, target: Target) -> None:
        loop = asyncio.get_running_loop()
        session = _Session(target, _peer_of(client), loop.time())
        self.sessions.add(session)
        self.on_count(len(self.sessions))
        self._idle.clear()
        self.metrics.connection_opened(target.name)
        try:
            await self._login(client, session)
        except Exception as exc:  # a defect of ours: this client ends, the proxy goes on
            session.reason = f"internal error: {type(exc).__name__}"
            _log.exception("pg: internal error serving %s", session.peer)
            client.close()
        if session.relay is None:
            self._finish(session)

    async def _login(self, client: Connection, session: _Session) -> None:
        try:
            machine, client = await asyncio.wait_for(self._startup(client, session), self.config.handshake_timeout)
        except asyncio.TimeoutError:
            self._refused(session, "handshake_timeout", f"no startup packet within {self.config.handshake_timeout:g} s")
            client.close()
            return
        except _Done:
            client.close()
            return
        except (pgp.ProtocolViolation, ssl.SSLError, OSError, ConnectionError) as exc:
            self._refused(session, "protocol", str(exc) or type(exc).__name__)
            with contextlib.suppress(Exception):
                if isinstance(exc, pgp.ProtocolViolation):
                    client.write(pgp.error_response(exc.fields()))
            client.close()
            return
        refusal = self._admission(session, machine)
        if refusal is not None:
            reason, fields = refusal
            self._refused(session, reason, dict(fields)["M"])
            client.write(machine.refuse(fields))
            client.close()
            return
        await self._connect(client, machine, session)

    async def _startup(self, client: Connection, session: _Session) -> tuple[hs.ServerHandshake, Connection]:
        machine = hs.ServerHandshake()
        while True:
            data = await client.read()
            if not data:
                session.reason = "closed before the startup packet"
                raise _Done
            for event in machine.receive(data):
                if isinstance(event, hs.TLSRequested):
                    client = await self._tls_requested(client, machine, event, session)
                    if not machine.tls_active:
                        for late in machine.receive(b""):  # bytes sent along with the SSLRequest
                            if isinstance(late, hs.StartupReceived):
                                _note_startup(late, session)
                                return machine, client
                elif isinstance(event, hs.GSSEncRequested):
                    client.write(machine.refuse_gssenc())
                elif isinstance(event, hs.CancelRequested):
                    await self._cancel(event.pid, event.secret, session)
                    raise _Done
                elif isinstance(event, hs.StartupReceived):
                    _note_startup(event, session)
                    return machine, client

    async def _tls_requested(
        self, client: Connection, machine: hs.ServerHandshake, event: hs.TLSRequested, session: _Session
    ) -> Connection:
        if self._client_tls is None or event.direct:
            if event.direct:  # a TLS ClientHello cannot be answered in plaintext
                session.reason = "direct TLS from the client is not supported: use sslnegotiation=postgres"
                raise _Done
            client.write(machine.refuse_tls())
            return client
        client.write(machine.accept_tls())
        loop = asyncio.get_running_loop()
        assert client.transport is not None
        client.transport = await loop.start_tls(client.transport, client, self._client_tls, server_side=True)
        machine.tls_started()
        return client

    def _admission(self, session: _Session, machine: hs.ServerHandshake) -> tuple[str, list[tuple[str, str]]] | None:
        """Refusals decided before any token is signed."""
        if self._client_tls is not None and not machine.tls_active:
            return "client_tls", fatal(
                "28000",
                "this listener requires TLS with a client certificate: whoever connects acts with the proxy's IAM "
                "identity",
                hint="connect with sslmode=verify-full sslcert=FILE sslkey=FILE (a certificate the proxy's "
                "--tls-client-ca signed) and sslrootcert= the CA of its --tls-cert",
            )
        if self.draining:
            return "draining", fatal(
                "57P03",
                "shutting down: no new connections (open sessions are finishing)",
                hint="connect again in a moment: a new proxy instance takes over",
            )
        logging_in_or_open = len(self.sessions)
        if logging_in_or_open > self.config.max_connections:
            return "max_connections", fatal(
                "53300",
                f"too many connections: this proxy allows {self.config.max_connections} at once (--max-connections)",
                hint="close idle connections or use a connection pool; raise --max-connections if the upstream allows",
            )
        return None

    async def _connect(self, client: Connection, machine: hs.ServerHandshake, session: _Session) -> None:
        target = session.target
        assert machine.startup is not None
        params = machine.startup.params
        token_holder: list[str] = []

        async def password() -> str:
            token_holder.append(await self.mint(target, session.user))
            return token_holder[0]

        # While the upstream login runs, what the client sends next stays in the kernel's buffers, not in ours.
        if client.transport is not None:
            client.transport.pause_reading()
        try:
            login = await open_upstream(
                target,
                params,
                protocol_version=pgp.PROTOCOL_3_0,
                context=self.upstream_tls,
                direct=self.config.direct_tls,
                timeout=self.config.connect_timeout,
                password=password,
                keepalive=self.config.keepalive,
            )
        except UpstreamFailure as failure:
            self._upstream_failed(client, machine, session, failure, token_holder)
            return
        self.metrics.upstream_connect(target.name, login.connect_seconds)
        if client.closed:
            login.connection.close()
            session.reason = "the client left during login"
            return
        client.write(machine.accept() + b"".join(login.messages))
        leftover = machine.leftover()
        if leftover:
            client.unread(leftover)
        session.outcome = "ok"
        if login.backend_key is not None:
            session.key = login.backend_key
            self._keys[login.backend_key[0]] = (login.backend_key[1], target)
        tune(client, self.config.keepalive)
        session.relay = _Relay(session, client, login.connection, lambda: self._finish(session))
        session.relay.start()
        if client.transport is not None and not client.closed:
            client.transport.resume_reading()

    async def mint(self, target: Target, user: str) -> str:
        credentials = self.minter.credentials_now()
        if credentials is None:  # a refresh may do I/O (SSO, STS, IMDS): off the event loop
            loop = asyncio.get_running_loop()
            try:
                credentials = await loop.run_in_executor(None, self.minter.credentials)
            except CredentialsError as exc:
                self.metrics.token_failed(target.name, "credentials")
                raise UpstreamFailure(
                    "credentials",
                    fatal("28000", f"cannot sign a token: {exc}", hint="the proxy's AWS credentials: see its log"),
                ) from None
        try:
            token = self.minter.mint(target, user, credentials)
        except Sigv4ProxyError as exc:  # e.g. a user name a token cannot carry
            self.metrics.token_failed(target.name, "signing")
            raise UpstreamFailure("credentials", fatal("28000", f"cannot sign a token: {exc}")) from None
        self.metrics.token_minted(target.name)
        return token

    def _upstream_failed(
        self,
        client: Connection,
        machine: hs.ServerHandshake,
        session: _Session,
        failure: UpstreamFailure,
        token_holder: list[str],
    ) -> None:
        fields = dict(failure.fields)
        summary = f"{fields.get('C', '')} {fields.get('M', '')}".strip()
        self._refused(session, failure.reason, summary)
        if failure.raw is not None:
            log_refusal(session.target, session.peer, session.user, fields, token_holder, self.minter.now())
            client.write(failure.raw)  # the upstream's own bytes; the client connection ends below
        else:
            _log.warning("pg: %s for %s: %s", session.target.name, session.peer, fields.get("M", failure.reason))
            client.write(machine.refuse(failure.fields))
        client.close()

    def _refused(self, session: _Session, reason: str, detail: str) -> None:
        session.outcome = "refused"
        session.reason = detail
        self.metrics.connection_refused(session.target.name, reason)

    def _finish(self, session: _Session) -> None:
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        self.on_count(len(self.sessions))
        if session.key is not None:
            self._keys.pop(session.key[0], None)
        self.metrics.connection_closed(session.target.name, session.bytes_up, session.bytes_down)
        seconds = asyncio.get_running_loop().time() - session.started
        _log.info(
            "pg: %s %s user=%s db=%s %s %.3fs up=%d down=%d%s",
            session.target.name,
            session.peer,
            session.user or "-",
            session.database or "-",
            session.outcome,
            seconds,
            session.bytes_up,
            session.bytes_down,
            f" {session.reason}" if session.reason else "",
        )
        if not self.sessions:
            self._idle.set()

    async def _cancel(self, pid: int, secret: bytes, session: _Session) -> None:
        """Forward a CancelRequest to the upstream connection it names (the keys are the upstream's own, passed to
        the client unchanged); an unknown or wrong key is dropped, as PostgreSQL does."""
        session.outcome = "cancel"
        entry = self._keys.get(pid)
        if entry is None or not hmac.compare_digest(entry[0], secret):
            session.reason = "cancel request for no open session"
            return
        target = entry[1]
        try:
            await send_cancel(
                target,
                self.upstream_tls,
                direct=self.config.direct_tls,
                pid=pid,
                secret=secret,
            )
        except (UpstreamFailure, OSError, asyncio.TimeoutError) as exc:
            session.reason = f"cancel not delivered: {exc}"
            return
        self.metrics.cancel_forwarded(target.name)
        session.reason = "cancel forwarded"


def log_refusal(target: Target, peer: str, user: str, fields: dict[str, str], tokens: list[str], now: datetime) -> None:
    """The upstream's own refusal (SQLSTATE, message, hint as it sent them), then what the `inspect` checks say
    about the token we sent (never the token)."""
    summary = f"{fields.get('C', '')} {fields.get('M', '')}".strip()
    hint = fields.get("H")
    _log.warning(
        "pg: %s refused %s (user %s): %s%s", target.name, peer, user, summary, f" (hint: {hint})" if hint else ""
    )
    if tokens:
        clock_suspect = bool(hint and hint.startswith(CLOCK_HINTS))
        for line in diagnose(tokens[0], user=user, now=now, clock_suspect=clock_suspect):
            _log.warning("pg: diagnosis: %s", line)


def _note_startup(event: hs.StartupReceived, session: _Session) -> None:
    session.user = event.params.get("user", "")
    session.database = event.params.get("database", session.user)  # PostgreSQL's default: the user's name


class _Done(Exception):
    """The client's start-up ended without a login (it left, or it was a cancel request)."""


class _ClientConnection(Connection):
    def __init__(self, door: Door, target: Target) -> None:
        super().__init__()
        self._door = door
        self._target = target

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._door.accepted(self, self._target)


def _bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(path: str) -> socket.socket:
    """A unix socket only its owner can use (0600): whoever connects logs in with the proxy's IAM identity."""
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        sock.bind(path)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(previous)
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def _remove_stale_socket(path: str) -> None:
    """A socket file left by a proxy that died is removed; one that a live server answers on is an error."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise OSError(f"{path} is in use by another server")


def _server_context(config: PgProxyConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    assert config.tls_cert is not None
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key) if config.tls_key else None)
    if config.tls_client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(config.tls_client_ca))
    return context


def _peer_of(connection: Connection) -> str:
    transport = connection.transport
    peer: Any = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return host_port(str(peer[0]), peer[1])
    return "local"

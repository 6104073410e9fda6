"""`emulate dsql`: the listener. TLS (SSLRequest or direct) with SNI, DSQL's token check, the role's backend
session, then the relay (:mod:`.session`). The checks themselves live in sans-IO modules: :mod:`.auth` (who may
log in), :mod:`.rules` (what DSQL refuses), :mod:`sigv4_proxy.pg.handshake` (the startup state machine); this
module only moves bytes between them and sockets.

    from sigv4_proxy.emulate import start_dsql

    with start_dsql() as dsql:                     # embedded PostgreSQL, loopback, generated identity
        conn = psycopg.connect(**dsql.libpq_params("admin"))
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import secrets
import shutil
import signal
import socket
import ssl
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from sigv4_proxy.emulate.dsql.auth import ClusterAddress, Identity, Refusal, generate_identity
from sigv4_proxy.emulate.dsql.session import Relay, RuleSet
from sigv4_proxy.endpoints import host_port
from sigv4_proxy.pg import handshake as hs
from sigv4_proxy.pg import protocol as pgp
from sigv4_proxy.pg.connection import Connection
from sigv4_proxy.pg.eventloop import LoopThread

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.emulate.dsql.backend import Backend
    from sigv4_proxy.emulate.dsql.rules import Limits
    from sigv4_proxy.emulate.dsql.tls import TlsMaterial

HANDSHAKE_TIMEOUT = 10.0  # seconds from accept to AuthenticationOk: a client that stalls is cut
DSQL_SERVER_VERSION = "16.15"
_CLUSTER_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
Verdict = Literal["accepted", "refused", "cancel", "error"]


@dataclass(frozen=True)
class DsqlEmulatorConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    cluster_id: str | None = None  # generated (26 lowercase letters and digits, as DSQL's) when None
    region: str = "us-east-1"
    identities: tuple[Identity, ...] = ()  # one generated identity when empty
    deny: frozenset[str] = frozenset()  # principal ARNs whose IAM policy lacks dsql:DbConnect[Admin]
    postgres_url: str | None = None
    data_dir: Path | None = None
    tls_dir: Path | None = None
    rules: Literal["dsql", "off"] = "dsql"
    foreign_keys: Literal["enforce", "refuse"] = "enforce"
    json_log: bool = False
    max_connections: int = 256
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    limits: Limits | None = None  # DSQL's (3,000 rows, 10 MiB, 300 s) when None; tests shrink them
    messages: tuple[tuple[str, str], ...] = ()  # rule texts swapped (rules.ERA_2025 for the 2025 wording)


@dataclass(frozen=True)
class ConnectionRecord:
    """One connection attempt, as logged: never a token, a signature or a secret."""

    time: datetime
    client: str
    verdict: Verdict
    reason: str
    user: str | None = None
    access_key: str | None = None  # masked
    sni: str | None = None

    def line(self) -> str:
        from sigv4_proxy.terminal import printable

        when = self.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        # user and SNI come from the client: escaped, so a crafted name cannot forge a log line
        return printable(
            f"{when} {self.client} user={self.user or '-'} key={self.access_key or '-'} "
            f"sni={self.sni or '-'} {self.verdict}: {self.reason}"
        )

    def json(self) -> str:
        data = dataclasses.asdict(self)
        data["time"] = self.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return json.dumps(data, sort_keys=True)


def generate_cluster_id() -> str:
    return "".join(secrets.choice(_CLUSTER_ID_ALPHABET) for _ in range(26))


@dataclass
class _SessionKey:
    """What a CancelRequest needs: the key the client was given, and its backend session's key."""

    secret: bytes
    backend_pid: int
    backend_secret: bytes


@dataclass
class _Accepted:
    client: Connection
    backend: Connection
    key: tuple[int, bytes]
    backend_key: tuple[int, bytes]


class _Refused(Exception):
    """The attempt ends here; the client has been told (or is gone)."""

    def __init__(self, reason: str, verdict: Verdict = "refused") -> None:
        super().__init__(reason)
        self.reason, self.verdict = reason, verdict


@dataclass
class _Attempt:
    client: str
    user: str | None = None
    access_key: str | None = None
    sni: str | None = None


class DsqlServer:
    """The asyncio side: accept loop, per-connection authentication, relays, cancel routing, counters."""

    def __init__(
        self,
        config: DsqlEmulatorConfig,
        *,
        backend: Backend,
        tls: ssl.SSLContext,
        cluster: ClusterAddress,
        identities: tuple[Identity, ...],
        rules: RuleSet | None,
        on_record: Callable[[ConnectionRecord], None] | None = None,
    ) -> None:
        self.config, self.backend, self.cluster = config, backend, cluster
        self.identities = {identity.access_key_id: identity for identity in identities}
        self.rules = rules
        self._tls = tls
        self._tls.sni_callback = _remember_sni
        self._on_record = on_record
        self.records: list[ConnectionRecord] = []
        self.counters: Counter[str] = Counter()
        self._relays: set[Relay] = set()
        self._keys: dict[int, _SessionKey] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._logging_in = 0  # connections between accept and the end of their login
        self._listener: socket.socket | None = None
        self._records_changed = threading.Condition()

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.config.listen_host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.config.listen_host, self.config.listen_port))
        listener.listen(512)
        listener.setblocking(False)
        self._listener = listener
        return listener

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    async def serve(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        while True:
            sock, address = await loop.sock_accept(self._listener)
            task = asyncio.create_task(self._serve_connection(sock, _peer_text(address)))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for task in list(self._pending):
            task.cancel()
        for relay in list(self._relays):
            relay.close()
        await asyncio.gather(*self._pending, return_exceptions=True)

    # -- one connection -------------------------------------------------------------------------------------------

    async def _serve_connection(self, sock: socket.socket, peer: str) -> None:
        self.counters["connections_total"] += 1
        attempt = _Attempt(peer)
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        client: list[Connection] = []
        self._logging_in += 1
        try:
            accepted = await asyncio.wait_for(self._authenticate(sock, attempt, client), self.config.handshake_timeout)
        except _Refused as refusal:
            self._record(attempt, refusal.verdict, refusal.reason)
            self._close(sock, client)
            return
        except asyncio.TimeoutError:
            self._record(attempt, "error", f"no login within {self.config.handshake_timeout:g} s")
            self._close(sock, client)
            return
        except (pgp.ProtocolViolation, ssl.SSLError, OSError, ConnectionError) as exc:
            self._record(attempt, "error", _exception_text(exc))
            self._close(sock, client)
            return
        except Exception as exc:  # a defect of ours: this connection ends, the server goes on
            self._record(attempt, "error", f"internal error: {type(exc).__name__}")
            self._close(sock, client)
            raise
        finally:
            self._logging_in -= 1
        self._record(attempt, "accepted", "signature verified")
        self._start_relay(accepted)

    def _close(self, sock: socket.socket, client: list[Connection]) -> None:
        if client:
            client[0].close()
        else:
            sock.close()

    def _start_relay(self, accepted: _Accepted) -> None:
        relay = Relay(
            accepted.client,
            accepted.backend,
            rules=self.rules,
            on_catalog_change=self._catalog_changed,
            on_close=self._relay_closed,
        )
        pid, secret = accepted.key
        self._keys[pid] = _SessionKey(secret, *accepted.backend_key)
        relay.key_pid = pid
        self._relays.add(relay)
        self.counters["sessions_open"] += 1
        relay.start()

    def _relay_closed(self, relay: Relay) -> None:
        self._relays.discard(relay)
        self.counters["sessions_open"] -= 1
        key = self._keys.pop(relay.key_pid, None)
        if key is not None and not relay.client_terminated:
            # The client vanished (maybe mid-query): stop its backend's work now, not when the query ends.
            self._spawn(self._cancel_backend(key.backend_pid, key.backend_secret))

    def _catalog_changed(self, changer: Relay) -> None:
        """A committed DDL, GRANT or REVOKE: every other session's next statement fails once with OC001."""
        for relay in self._relays:
            if relay is not changer:
                relay.pending_oc001 = True

    # -- authentication ---------------------------------------------------------------------------------------------

    async def _authenticate(self, sock: socket.socket, attempt: _Attempt, holder: list[Connection]) -> _Accepted:
        # Sessions and logins in progress both count: a flood of stalled handshakes is bounded too.
        if len(self._relays) + self._logging_in > self.config.max_connections:
            await self._refuse_raw(sock, _too_many_connections(), "too many open connections")
        machine = hs.ServerHandshake()
        first = await _peek(sock)
        if not first:
            raise _Refused("closed before the startup packet", "error")
        if pgp.is_tls_client_hello(first):
            client = await self._start_tls(sock, holder, attempt)
            machine.tls_started()
        else:
            client = await self._before_tls(sock, machine, holder, attempt)
        return await self._login(client, machine, attempt)

    async def _before_tls(
        self, sock: socket.socket, machine: hs.ServerHandshake, holder: list[Connection], attempt: _Attempt
    ) -> Connection:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(sock, 16384)
            if not data:
                raise _Refused("closed before the startup packet", "error")
            for event in machine.receive(data):
                if isinstance(event, hs.TLSRequested):
                    await loop.sock_sendall(sock, machine.accept_tls())
                    client = await self._start_tls(sock, holder, attempt)
                    machine.tls_started()
                    return client
                if isinstance(event, hs.GSSEncRequested):
                    await loop.sock_sendall(sock, machine.refuse_gssenc())
                elif isinstance(event, hs.CancelRequested):
                    self._cancel(event.pid, event.secret)
                    raise _Refused("cancel request", "cancel")
                elif isinstance(event, hs.StartupReceived):
                    attempt.user = event.params.get("user")
                    refusal = _tls_required()
                    await loop.sock_sendall(sock, machine.refuse(refusal.fields()))
                    raise _Refused(refusal.reason)

    async def _start_tls(self, sock: socket.socket, holder: list[Connection], attempt: _Attempt) -> Connection:
        loop = asyncio.get_running_loop()
        # A fresh descriptor for the transport: the pre-TLS reads registered this one with the loop, and uvloop
        # keeps such a registration (its transport on the same descriptor would then never see a byte).
        fresh = sock.dup()
        sock.close()
        client = Connection()
        # The protocol object is ours, not what the call returns: uvloop returns its SSL wrapper protocol.
        transport, _ = await loop.connect_accepted_socket(
            lambda: client, fresh, ssl=self._tls, ssl_handshake_timeout=self.config.handshake_timeout
        )
        holder.append(client)
        ssl_object = transport.get_extra_info("ssl_object")
        attempt.sni = getattr(ssl_object, "sigv4_sni", None)
        return client

    async def _login(self, client: Connection, machine: hs.ServerHandshake, attempt: _Attempt) -> _Accepted:
        params: dict[str, str] = {}
        token_host = ""
        while True:
            data = await client.read()
            if not data:
                raise _Refused("closed during the login", "error")
            for event in machine.receive(data):
                if isinstance(event, hs.CancelRequested):
                    self._cancel(event.pid, event.secret)
                    raise _Refused("cancel request", "cancel")
                if isinstance(event, hs.StartupReceived):
                    params = dict(event.params)
                    attempt.user = params.get("user")
                    token_host = self._check_startup(client, machine, params, attempt)
                    client.write(machine.request_password())
                elif isinstance(event, hs.PasswordReceived):
                    return await self._verify(client, machine, params, token_host, event.password, attempt)
                elif isinstance(event, hs.ClientTerminated):
                    raise _Refused("client terminated during the login", "error")

    def _check_startup(
        self, client: Connection, machine: hs.ServerHandshake, params: dict[str, str], attempt: _Attempt
    ) -> str:
        from sigv4_proxy.emulate.dsql.auth import resolve_sni

        reply = machine.negotiate_reply()
        if reply:
            client.write(reply)
        from sigv4_proxy.emulate.dsql.rules import options_cluster_id

        resolved = resolve_sni(attempt.sni, self.cluster, options_cluster_id=options_cluster_id(params))
        if isinstance(resolved, Refusal):
            self._refuse(client, machine, resolved)
        if self.rules is not None:
            from sigv4_proxy.emulate.dsql.rules import startup_refusal

            refused = startup_refusal(params)
            if refused is not None:
                fields = pgp.error_fields("FATAL", refused.sqlstate, refused.message, detail=refused.detail)
                client.write(machine.refuse(fields))
                raise _Refused(f"startup parameter refused: {refused.message}")
        assert isinstance(resolved, str)
        return resolved

    async def _verify(
        self,
        client: Connection,
        machine: hs.ServerHandshake,
        params: dict[str, str],
        token_host: str,
        password: str,
        attempt: _Attempt,
    ) -> _Accepted:
        from sigv4_proxy.emulate.dsql.auth import check_role, check_token

        user = params.get("user", "")
        verdict = check_token(
            password,
            user=user,
            token_host=token_host,
            cluster=self.cluster,
            identities=self.identities,
            denied=self.config.deny,
            now=datetime.now(timezone.utc),
        )
        attempt.access_key = verdict.masked_access_key
        if not verdict.ok or verdict.identity is None:
            assert verdict.refusal is not None
            self._refuse(client, machine, verdict.refusal)
        assert verdict.identity is not None
        role = None if user == "admin" else await self.backend.role_info(user)
        refusal = check_role(user, verdict.identity, role, self.cluster)
        if refusal is not None:
            self._refuse(client, machine, refusal)
        backend, messages, backend_key, error = await self._open_backend(user, params)
        if error is not None:
            client.write(machine.refuse(error))
            raise _Refused(f"backend refused the session: {dict(error).get('M', '?')}")
        assert backend is not None and backend_key is not None
        key = (_new_pid(self._keys), secrets.token_bytes(4))
        client.write(machine.accept() + b"".join(messages[:-1]) + pgp.backend_key_data(*key) + messages[-1])
        client.unread(machine.leftover())
        return _Accepted(client, backend, key, backend_key)

    def _refuse(self, client: Connection, machine: hs.ServerHandshake, refusal: Refusal) -> None:
        client.write(machine.refuse(refusal.fields()))
        raise _Refused(refusal.reason or refusal.message)

    async def _refuse_raw(self, sock: socket.socket, refusal: Refusal, reason: str) -> None:
        """Before any TLS: the quota answer goes out in the clear, as the client has not negotiated yet."""
        with contextlib.suppress(OSError):
            await asyncio.get_running_loop().sock_sendall(sock, pgp.error_response(refusal.fields()))
        raise _Refused(reason)

    # -- the backend ----------------------------------------------------------------------------------------------

    async def _open_backend(
        self, role: str, client_params: dict[str, str]
    ) -> tuple[Connection | None, list[bytes], tuple[int, bytes] | None, list[tuple[str, str]] | None]:
        backend = await self._dial_backend()
        startup = self.backend.session_startup_params(
            role, client_params, rules_on=self.rules is not None, limits=self._limits()
        )
        machine = hs.ClientHandshake(startup)
        backend.write(machine.start())
        messages: list[bytes] = []
        key: tuple[int, bytes] | None = None
        while True:
            data = await backend.read()
            if not data:
                backend.close()
                return None, [], None, _backend_gone()
            for event in machine.receive(data):
                if isinstance(event, hs.ParameterStatus):
                    messages.append(self._parameter_status(event))
                elif isinstance(event, hs.BackendKey):
                    key = (event.pid, event.secret)
                elif isinstance(event, hs.ServerNotice):
                    messages.append(event.raw)
                elif isinstance(event, hs.ServerError):
                    backend.close()
                    return None, [], None, list(event.fields)
                elif isinstance(event, hs.PasswordRequested):
                    backend.close()
                    return None, [], None, _backend_wants_password(role)
                elif isinstance(event, hs.Ready):
                    messages.append(event.raw)
                    backend.unread(machine.leftover())
                    return backend, messages, key or (0, b"\0\0\0\0"), None

    async def _dial_backend(self) -> Connection:
        loop = asyncio.get_running_loop()
        path, host, port = self.backend.session_address()
        if path is not None:
            _, backend = await loop.create_unix_connection(Connection, path)
        else:
            _, backend = await loop.create_connection(Connection, host, port)
            sock = backend.transport.get_extra_info("socket") if backend.transport else None
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return backend

    def _parameter_status(self, event: hs.ParameterStatus) -> bytes:
        if self.rules is not None and event.name == "server_version":
            return pgp.parameter_status("server_version", self.rules.config.server_version)
        return event.raw

    def _limits(self) -> Any:
        return self.rules.config.limits if self.rules is not None else None

    # -- cancel ---------------------------------------------------------------------------------------------------

    def _cancel(self, pid: int, secret: bytes) -> None:
        key = self._keys.get(pid)
        self.counters["cancel_requests"] += 1
        if key is None or not hmac.compare_digest(key.secret, secret):
            return  # as PostgreSQL: a wrong key is ignored without an answer
        self._spawn(self._cancel_backend(key.backend_pid, key.backend_secret))

    async def _cancel_backend(self, pid: int, secret: bytes) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            backend = await self._dial_backend()
            backend.write(pgp.cancel_request(pid, secret))
            await backend.read()  # the backend closes once it has taken the request
            backend.close()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- records ----------------------------------------------------------------------------------------------------

    def _record(self, attempt: _Attempt, verdict: Verdict, reason: str) -> None:
        record = ConnectionRecord(
            datetime.now(timezone.utc), attempt.client, verdict, reason, attempt.user, attempt.access_key, attempt.sni
        )
        self.counters[f"{verdict}"] += 1
        with self._records_changed:
            self.records.append(record)
            self._records_changed.notify_all()
        if self._on_record is not None:
            self._on_record(record)

    def wait_for_records(self, count: int, timeout: float = 10.0) -> list[ConnectionRecord]:
        with self._records_changed:
            if not self._records_changed.wait_for(lambda: len(self.records) >= count, timeout):
                raise TimeoutError(f"expected {count} connection records, got {len(self.records)}")
            return list(self.records)


# -- helpers ----------------------------------------------------------------------------------------------------


def _remember_sni(ssl_object: Any, server_name: str | None, context: ssl.SSLContext) -> None:
    """OpenSSL's servername callback: keep the SNI on the connection (Python has no getter for it)."""
    ssl_object.sigv4_sni = server_name


async def _peek(sock: socket.socket) -> bytes:
    """The first bytes without consuming them: a TLS ClientHello must reach the TLS layer whole."""
    while True:
        try:
            return sock.recv(8, socket.MSG_PEEK)
        except BlockingIOError:
            await _readable(sock)


async def _readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


def _new_pid(taken: dict[int, _SessionKey]) -> int:
    while True:
        pid = secrets.randbelow(2**31 - 2) + 1
        if pid not in taken:
            return pid


def _peer_text(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return host_port(address[0], address[1])
    return str(address)


def _exception_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


def _tls_required() -> Refusal:
    # Ours: DSQL rejects plaintext connections, but the text a plaintext client receives is not recorded.
    return Refusal(
        "08P01",
        "unable to accept connection, SSL is required",
        hint="Connect with sslmode=require or stronger (verify-full with the emulator's CA file).",
        reason="plaintext connection (TLS is required)",
    )


def _too_many_connections() -> Refusal:
    return Refusal(
        "53300", "Unable to accept connection, too many open connections.", reason="too many", severity="ERROR"
    )


def _backend_gone() -> list[tuple[str, str]]:
    return pgp.error_fields("FATAL", "08006", "the emulator's PostgreSQL closed the session during its start")


def _backend_wants_password(role: str) -> list[tuple[str, str]]:
    return pgp.error_fields(
        "FATAL",
        "08006",
        f"the emulator's PostgreSQL asked for a password for role {role!r}",
        hint="--postgres must point at a server that lets the emulator log in as any role without a password "
        "(trust on its socket), as the embedded one does.",
    )


# -- the running emulator (a thread with its own loop) -----------------------------------------------------------


class DsqlEmulator:
    """A running `emulate dsql`: backend PostgreSQL, TLS material, the listener on its own thread.

    Attributes: ``listen_host``, ``port``, ``host`` (the cluster host clients name, for SNI and tokens),
    ``cluster_id``, ``region``, ``identities``, ``ca_file``, ``backend``, ``records``."""

    def __init__(self, config: DsqlEmulatorConfig, on_record: Callable[[ConnectionRecord], None] | None = None):
        from sigv4_proxy.emulate.dsql.backend import Backend
        from sigv4_proxy.emulate.dsql.tls import ensure_tls_material, server_context

        self.config = config
        self.cluster_id = config.cluster_id or generate_cluster_id()
        self.region = config.region
        self.cluster = ClusterAddress(self.cluster_id, self.region)
        self.host = self.cluster.public_host
        self.identities = config.identities or (generate_identity(),)
        self.rules = _rule_set(config)
        self.tls: TlsMaterial = ensure_tls_material(config.tls_dir, [self.host])
        self.ca_file = self.tls.ca_file
        self.backend = Backend.start(
            data_dir=config.data_dir, postgres_url=config.postgres_url, max_connections=config.max_connections + 16
        )
        try:
            from sigv4_proxy.emulate.dsql.rules import RULES

            self.backend.bootstrap(self.rules.table if self.rules is not None else RULES)
            self.server = DsqlServer(
                config,
                backend=self.backend,
                tls=server_context(self.tls),
                cluster=self.cluster,
                identities=self.identities,
                rules=self.rules,
                on_record=on_record,
            )
            self.server.bind()
        except BaseException:
            self.backend.stop()
            raise
        self.listen_host = config.listen_host
        self.port = self.server.port
        self._serving: asyncio.Task[None] | None = None
        self._thread = LoopThread(f"emulate-dsql:{self.port}", self._start_serving, self._stop_serving)

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> DsqlEmulator:
        try:
            self._thread.start(15)
        except RuntimeError as exc:
            raise RuntimeError(f"the DSQL emulator {exc}") from exc.__cause__
        return self

    async def _start_serving(self) -> None:
        self._serving = asyncio.create_task(self.server.serve())

    async def _stop_serving(self) -> None:
        if self._serving is not None:
            self._serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving
        await self.server.aclose()
        await self.backend.aclose()

    def close(self) -> None:
        """Stop serving (open sessions are cut) and stop the backend (idempotent)."""
        self._thread.stop()
        self.backend.stop()
        if self.tls.temporary:
            shutil.rmtree(self.tls.ca_file.parent, ignore_errors=True)

    def __enter__(self) -> DsqlEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for clients ------------------------------------------------------------------------------------------

    def token(
        self,
        user: str = "admin",
        identity: Identity | None = None,
        *,
        expires_in: int = 900,
        now: datetime | None = None,
        host: str | None = None,
    ) -> str:
        """A token for this cluster as `sigv4-proxy dsql-token` makes it (admin ↔ DbConnectAdmin)."""
        from sigv4_proxy.credentials import Credentials
        from sigv4_proxy.tokens import dsql_token

        chosen = identity or self.identities[0]
        credentials = Credentials(chosen.access_key_id, chosen.secret_access_key, chosen.session_token)
        return dsql_token(
            host or self.host,
            self.region,
            admin=user == "admin",
            expires_in=expires_in,
            credentials=credentials,
            now=now,
        )

    def libpq_params(
        self, user: str = "admin", *, password: str | None = None, identity: Identity | None = None
    ) -> dict[str, str]:
        """Keyword arguments for libpq clients (psycopg.connect(**params)): the cluster host for SNI, the
        certificate check and the token, with hostaddr pointing at the loopback listener."""
        return {
            "host": self.host,
            "hostaddr": self.listen_host,
            "port": str(self.port),
            "dbname": "postgres",
            "user": user,
            "password": password if password is not None else self.token(user, identity),
            "sslmode": "verify-full",
            "sslrootcert": str(self.ca_file),
        }

    def dsn(self, user: str = "admin", *, password: str | None = None, identity: Identity | None = None) -> str:
        params = self.libpq_params(user, password=password, identity=identity)
        return " ".join(f"{key}={_libpq_quote(value)}" for key, value in params.items())

    @property
    def superuser_dsn(self) -> str:
        """The backend PostgreSQL directly, as its superuser (tests and benchmarks; bypasses every check)."""
        return self.backend.superuser_dsn

    @property
    def records(self) -> list[ConnectionRecord]:
        return list(self.server.records)

    def wait_for_records(self, count: int, timeout: float = 10.0) -> list[ConnectionRecord]:
        return self.server.wait_for_records(count, timeout)

    def counters(self) -> dict[str, int]:
        return dict(self.server.counters)

    def info(self) -> Any:
        from sigv4_proxy.emulate.dsql.banner import BannerInfo

        return BannerInfo.from_emulator(self)


def _libpq_quote(value: str) -> str:
    if value and all(ch not in value for ch in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _rule_set(config: DsqlEmulatorConfig) -> RuleSet | None:
    if config.rules == "off":
        return None
    from sigv4_proxy.emulate.dsql.rules import Limits, RulesConfig, analyze

    rules_config = RulesConfig(
        foreign_keys=config.foreign_keys,
        limits=config.limits or Limits(),
        server_version=DSQL_SERVER_VERSION,
        overrides=config.messages,
    )

    def analyze_with_config(sql: str) -> Any:
        return analyze(sql, rules_config)

    return RuleSet(rules_config, rules_config.rules, analyze_with_config)


@contextlib.contextmanager
def start_dsql(
    config: DsqlEmulatorConfig | None = None,
    *,
    on_record: Callable[[ConnectionRecord], None] | None = None,
    **overrides: Any,
) -> Iterator[DsqlEmulator]:
    """Start `emulate dsql` (embedded PostgreSQL unless `postgres_url`), yield it, stop it on exit."""
    chosen = dataclasses.replace(config or DsqlEmulatorConfig(), **overrides)
    emulator = DsqlEmulator(chosen, on_record)
    try:
        emulator.start()
        yield emulator
    finally:
        emulator.close()


def serve_forever(config: DsqlEmulatorConfig, *, out: TextIO | None = None) -> int:
    """The CLI's loop: banner, one line per connection attempt, counters on exit (SIGINT/SIGTERM)."""
    stream = out or sys.stderr

    def log(record: ConnectionRecord) -> None:
        print(record.json() if config.json_log else record.line(), file=stream, flush=True)

    from sigv4_proxy.emulate.dsql.banner import banner

    with start_dsql(config, on_record=log) as emulator:
        print(banner(emulator.info()), file=stream, flush=True)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        counters = emulator.counters()
    summary = ", ".join(f"{name} {value}" for name, value in sorted(counters.items())) or "no connections"
    print(f"emulate dsql: stopped ({summary})", file=stream, flush=True)
    return 0

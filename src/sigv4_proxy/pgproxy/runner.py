"""A running `sigv4-proxy pg`: the door on its own thread and event loop, the health server, signals.

:func:`start_pg_proxy` is the library's and the tests' way in; :func:`serve_forever` is the CLI's (banner,
SIGTERM/SIGINT drain, SIGHUP credential reload, exit code).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TextIO

from sigv4_proxy.clock import utc_now
from sigv4_proxy.credentials import CredentialProvider, CredentialSource, describe_credentials
from sigv4_proxy.endpoints import host_port
from sigv4_proxy.errors import CredentialsError, Sigv4ProxyError
from sigv4_proxy.pg import protocol as pgp
from sigv4_proxy.pg.eventloop import LoopThread
from sigv4_proxy.pgproxy.config import PgProxyConfig, Target
from sigv4_proxy.pgproxy.door import Door, Listener, log_refusal
from sigv4_proxy.pgproxy.tokens import TokenMinter
from sigv4_proxy.pgproxy.upstream import UpstreamFailure, open_upstream, probe
from sigv4_proxy.redact import mask_access_key
from sigv4_proxy.signing.model import Credentials

_log = logging.getLogger("sigv4_proxy.pg")
READINESS_DIAL_CACHE = 10.0
START_TIMEOUT = 15.0


class PgProxyStartError(Sigv4ProxyError):
    """The proxy could not start: a port in use, a failed --run-connection-test."""


class PgProxy:
    """A running proxy. Attributes: ``config``, ``listeners``, ``health_port``, ``metrics``."""

    def __init__(
        self,
        config: PgProxyConfig,
        *,
        credentials: CredentialSource | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        from sigv4_proxy.pgproxy.health import HealthState, ProxyMetrics

        self.config = config
        self._source_is_botocore = credentials is None
        source = credentials if credentials is not None else CredentialProvider(config.profile)
        self.minter = TokenMinter(source, expires_in=config.token_expires_in, now=now or utc_now)
        self.metrics = ProxyMetrics([target.name for target in config.targets])
        self.health_state = HealthState(max_connections=config.max_connections)
        self.door = Door(config, self.minter, self.metrics)
        self.door.on_count = self._count_changed
        try:
            self.listeners: list[Listener] = self.door.bind()
        except OSError as exc:
            raise PgProxyStartError(_bind_problem(config, exc)) from None
        self.metrics.live_bytes(self.door.live_bytes)
        self.metrics.credentials_expiry(self._expiry_in_hand, self.minter.now)
        self.health_port: int | None = None
        self._health: Any = None
        self._loop = LoopThread("sigv4-proxy-pg", self.door.serve, self.door.aclose)
        self._dial_cache: dict[str, tuple[float, str]] = {}
        self._closed = False
        self.credentials_at_start: Credentials | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> PgProxy:
        try:  # fail at start, not at the first client: an ended SSO session is said now, with its fix
            self.credentials_at_start = self.minter.credentials()
        except CredentialsError as exc:
            raise PgProxyStartError(str(exc)) from None
        try:
            self._loop.start(START_TIMEOUT)
        except RuntimeError as exc:
            raise PgProxyStartError(f"the pg proxy {exc}") from None
        if self.config.run_connection_test:
            self._connection_test()
        if self.config.health_port is not None:
            from sigv4_proxy.pgproxy.health import HealthServer

            self._health = HealthServer(
                self.config.health_host, self.config.health_port, self.health_state, self.metrics, self._readiness
            )
            try:
                self.health_port = self._health.start()
            except OSError as exc:
                raise PgProxyStartError(
                    f"cannot serve health checks on {self.config.health_host}:{self.config.health_port}: "
                    f"{exc.strerror or exc}"
                ) from None
        self.health_state.started = True
        return self

    def close(self) -> None:
        """Stop (open sessions are cut); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._health is not None:
            self._health.close()
        self._loop.stop()
        for listener in self.listeners:  # the loop's teardown removed them, unless it never ran
            if listener.unix_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(listener.unix_path)

    def __enter__(self) -> PgProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coroutine: Any, timeout: float | None = None) -> Any:
        return self._loop.call(coroutine, timeout)

    # -- operations -----------------------------------------------------------------------------------------------

    def drain(self, timeout: float | None = None) -> int:
        """As SIGTERM: new clients get FATAL 57P03, open sessions get up to ``timeout`` seconds (the config's
        max_sigterm_delay by default); returns how many had to be cut."""
        return int(self.start_drain(timeout).result())

    def start_drain(self, timeout: float | None = None) -> concurrent.futures.Future[int]:
        # Refusing starts now, not when the loop gets to the drain: a client arriving meanwhile is refused too.
        self.door.draining = True
        self.health_state.draining = True
        self.metrics.set_draining(True)
        delay = self.config.max_sigterm_delay if timeout is None else timeout
        return self._loop.submit(self.door.drain(delay))

    def cut_all(self) -> None:
        """Cut every open session now (a second signal during the drain)."""
        self._loop.call_soon(self.door.cut_all)

    def reload_credentials(self) -> None:
        """As SIGHUP: load the credentials again (after `aws sso login`, a rotated key file, ...)."""
        try:
            if self._source_is_botocore:
                fresh = CredentialProvider(self.config.profile)
                credentials = fresh.get()
                self.minter.source = fresh
            else:
                credentials = self.minter.source.force_refresh()
        except CredentialsError as exc:
            _log.error("pg: credentials reload failed (keeping the current ones): %s", exc)
            return
        _log.info("pg: credentials reloaded: %s", mask_access_key(credentials.access_key_id))

    # -- for clients and tests --------------------------------------------------------------------------------

    def port(self, index: int = 0) -> int:
        return self.listeners[index].port

    def libpq_params(self, index: int = 0, user: str = "admin", dbname: str = "postgres") -> dict[str, str]:
        listener = self.listeners[index]
        host = str(listener.unix_path).rsplit("/", 1)[0] if listener.unix_path else listener.host
        return {"host": host, "port": str(listener.port), "user": user, "dbname": dbname, "sslmode": "disable"}

    def dsn(self, index: int = 0, user: str = "admin", dbname: str = "postgres") -> str:
        return " ".join(f"{key}={value}" for key, value in self.libpq_params(index, user, dbname).items())

    def counters(self) -> dict[str, int]:
        return dict(self.metrics.counters())

    def metrics_text(self) -> str:
        return bytes(self.metrics.text()).decode()

    # -- checks ---------------------------------------------------------------------------------------------------

    def _expiry_in_hand(self) -> datetime | None:
        """For the metrics scrape: the expiry of the credentials in hand, never a refresh (no I/O)."""
        credentials = self.minter.credentials_now()
        return None if credentials is None else credentials.expiry

    def _count_changed(self, count: int) -> None:
        self.health_state.open_connections = count

    def _readiness(self) -> list[tuple[str, bool, str]]:
        checks: list[tuple[str, bool, str]] = []
        try:
            credentials = self.minter.credentials()
        except CredentialsError as exc:
            return [("credentials", False, str(exc))]
        expiry = credentials.expiry
        left = None if expiry is None else (expiry - self.minter.now()).total_seconds()
        if left is not None and left < 60:
            return [("credentials", False, f"{mask_access_key(credentials.access_key_id)} expire in {left:.0f} s")]
        checks.append(("credentials", True, _describe(credentials.access_key_id, left)))
        target = self.config.targets[0]
        try:
            self.minter.mint(target, self.config.test_user, credentials)
        except Sigv4ProxyError as exc:
            checks.append(("token", False, str(exc)))
        else:
            checks.append(("token", True, f"signed for {target.token_host}"))
        if self.config.readiness_dial:
            checks += [self._dial_check(target) for target in self.config.targets]
        return checks

    def _dial_check(self, target: Target) -> tuple[str, bool, str]:
        cached = self._dial_cache.get(target.name)
        now = time.monotonic()
        if cached is None or now - cached[0] > READINESS_DIAL_CACHE:
            try:
                problem = self._call(
                    probe(
                        target,
                        self.door.upstream_tls,
                        direct=self.config.direct_tls,
                        timeout=self.config.connect_timeout,
                    ),
                    self.config.connect_timeout + 1,
                )
            except Exception as exc:  # the loop is gone or the probe overran: not ready
                problem = f"dial failed: {type(exc).__name__}"
            cached = (now, problem)
            self._dial_cache[target.name] = cached
        problem = cached[1]
        return (f"upstream {target.name}", not problem, problem or "TCP and TLS handshake ok")

    def _connection_test(self) -> None:
        failures: list[str] = []
        for target in self.config.targets:
            tokens: list[str] = []
            try:
                self._call(self._log_in_once(target, tokens), self.config.connect_timeout + 5)
            except UpstreamFailure as failure:
                fields = dict(failure.fields)
                if failure.raw is not None:
                    log_refusal(target, "connection test", self.config.test_user, fields, tokens, self.minter.now())
                failures.append(f"{target.name}: {fields.get('C', '')} {fields.get('M', '')}".strip())
            else:
                _log.info("pg: connection test: %s: logged in as %s", target.name, self.config.test_user)
        if failures:
            self.close()
            raise PgProxyStartError("connection test failed: " + "; ".join(failures))

    async def _log_in_once(self, target: Target, tokens: list[str]) -> None:
        async def password() -> str:
            tokens.append(await self.door.mint(target, self.config.test_user))
            return tokens[-1]

        login = await open_upstream(
            target,
            {"user": self.config.test_user, "database": "postgres", "application_name": "sigv4-proxy connection test"},
            protocol_version=pgp.PROTOCOL_3_0,
            context=self.door.upstream_tls,
            direct=self.config.direct_tls,
            timeout=self.config.connect_timeout,
            password=password,
        )
        login.connection.write(pgp.terminate())
        login.connection.close()


def _describe(access_key_id: str, left: float | None) -> str:
    key = mask_access_key(access_key_id)
    return f"{key}, long-term" if left is None else f"{key}, valid for {left:.0f} s"


def _bind_problem(config: PgProxyConfig, exc: OSError) -> str:
    where = str(config.unix_socket_dir) if config.unix_socket_dir is not None else config.listen_host
    return f"cannot listen on {where} (port {config.listen_port}): {exc.strerror or exc}"


@contextlib.contextmanager
def start_pg_proxy(
    config: PgProxyConfig,
    *,
    credentials: CredentialSource | None = None,
    now: Callable[[], datetime] | None = None,
) -> Iterator[PgProxy]:
    """Start `sigv4-proxy pg` in this process (its own thread and loop), yield it, stop it on exit."""
    proxy = PgProxy(config, credentials=credentials, now=now)
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.close()


def banner(proxy: PgProxy) -> str:
    """What to put in the client's connection string, one line per listener."""
    lines = []
    for listener in proxy.listeners:
        target = listener.target
        if listener.unix_path is not None:
            where = f"host={listener.unix_path.rsplit('/', 1)[0]} port={listener.port}"
        else:
            where = f"host={listener.host} port={listener.port}"
        lines.append(
            f"sigv4-proxy pg: {listener.address} -> {target.hostname}:{target.port} ({target.kind}); connect with "
            f'"{where} user=admin dbname=postgres sslmode=disable" (no password: the proxy signs a token per '
            "connection)"
        )
    if proxy.credentials_at_start is not None:
        described = describe_credentials(proxy.credentials_at_start, proxy.minter.source.method)
        lines.append(f"sigv4-proxy pg: signing with {described}")
    if proxy.health_port is not None:
        host = proxy.config.health_host
        lines.append(
            f"sigv4-proxy pg: health checks and metrics on http://{host_port(host, proxy.health_port)}/ "
            "(startup, liveness, readiness, metrics)"
        )
    return "\n".join(lines)


def serve_forever(config: PgProxyConfig, *, out: TextIO | None = None) -> int:
    """The CLI's loop. SIGTERM/SIGINT drain (a second one cuts at once); SIGHUP reloads credentials. Exit code 0
    after a clean drain, 1 when sessions had to be cut at the deadline."""
    from sigv4_proxy.logs import setup_logging

    stream = out or sys.stderr
    setup_logging("info", "json" if config.json_log else "text", stream)
    stop = threading.Event()
    reload = threading.Event()
    signals_seen: list[int] = []

    def on_stop(number: int, _frame: Any) -> None:
        signals_seen.append(number)
        stop.set()

    handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: lambda *_: reload.set()}
    previous = {number: signal.signal(number, handler) for number, handler in handlers.items()}
    try:
        with start_pg_proxy(config) as proxy:
            for line in banner(proxy).splitlines():
                if config.json_log:  # every line of a JSON log is a JSON object
                    _log.info("%s", line)
                else:
                    print(line, file=stream, flush=True)
            while not stop.wait(0.2):
                if reload.is_set():
                    reload.clear()
                    proxy.reload_credentials()
            return _drain(proxy, config, signals_seen)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _drain(proxy: PgProxy, config: PgProxyConfig, seen: list[int]) -> int:
    future = proxy.start_drain()
    _log.info(
        "pg: stopping: %d open connection(s) get up to %gs to finish; new clients are refused (signal again to "
        "stop at once)",
        proxy.health_state.open_connections,
        config.max_sigterm_delay,
    )
    while True:
        try:
            cut = future.result(0.2)
            break
        except concurrent.futures.TimeoutError:
            if len(seen) > 1:  # a second SIGTERM/SIGINT, whenever it came
                proxy.cut_all()
    if cut:
        _log.warning("pg: %d connection(s) still open at the end of the drain were closed", cut)
    else:
        _log.info("pg: stopped cleanly")
    return 1 if cut else 0

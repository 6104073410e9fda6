"""Health endpoints and Prometheus metrics for `sigv4-proxy pg`.

:class:`ProxyMetrics` counts what the proxy does (connections, refusals, tokens, bytes, upstream connect times)
in plain integers under one lock, and a single collector turns them into Prometheus metrics at scrape time, in
the proxy's own :class:`~prometheus_client.CollectorRegistry` (never the global one: two proxies in one process,
or a test beside a proxy, must not share series). One snapshot per scrape keeps the numbers consistent with each
other, and :meth:`ProxyMetrics.counters` reads the same snapshot as ``/metrics``.

:class:`HealthServer` answers ``/startup``, ``/liveness``, ``/readiness`` and ``/metrics`` on its own thread
(cloud-sql-proxy's semantics with its gaps fixed: readiness turns 503 the moment draining starts, and it really
checks that a login could work now: credentials valid and a token mintable). The runner updates a
:class:`HealthState`; the handlers only read it.

The server is bounded: a request head larger than ``MAX_HEAD_BYTES`` is refused with 431, a head must arrive
completely within ``HEAD_TIMEOUT`` seconds (in total, so a client dribbling bytes cannot hold a thread), at
most ``MAX_CLIENTS`` connections are served at once (more are closed unanswered), one request per connection,
GET and HEAD only.
"""

from __future__ import annotations

import bisect
import http.server
import io
import itertools
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from sigv4_proxy.clock import utc_now
from sigv4_proxy.logs import get_logger

__all__ = [
    "CONNECT_BUCKETS",
    "HEAD_TIMEOUT",
    "MAX_CLIENTS",
    "MAX_HEAD_BYTES",
    "REFUSAL_REASONS",
    "HealthServer",
    "HealthState",
    "LiveBytesSource",
    "ProxyMetrics",
    "ReadinessCheck",
]

_log = get_logger("pg")

MAX_HEAD_BYTES = 8 * 1024
HEAD_TIMEOUT = 5.0
MAX_CLIENTS = 32  # probes and scrapes come one at a time; anything beyond this is not a health checker
_POLL_INTERVAL = 0.1  # how quickly close() stops the accept loop

REFUSAL_REASONS = (
    "max_connections",
    "draining",
    "upstream_refused",
    "upstream_unreachable",
    "upstream_tls",
    "upstream_dns",
    "upstream_timeout",
    "credentials",
    "client_tls",
    "protocol",
    "handshake_timeout",
)
# Upstream connect (TCP + TLS + login): 1 ms on loopback up to the 30 s a stuck dial may take.
CONNECT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TO_UPSTREAM = "to_upstream"
TO_CLIENT = "to_client"

LiveBytesSource = Callable[[], Iterable[tuple[str, int, int]]]
ReadinessCheck = tuple[str, bool, str]  # (name, ok, detail)


# --- metrics ------------------------------------------------------------------------------------------------------


@dataclass
class _TargetTally:
    """One target's numbers. Bytes here are those of closed connections; open ones come from the live source."""

    connections_total: int = 0
    connections_open: int = 0
    bytes_to_upstream: int = 0
    bytes_to_client: int = 0
    tokens_minted: int = 0
    cancels_forwarded: int = 0
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REFUSAL_REASONS, 0))
    token_failures: dict[str, int] = field(default_factory=dict)
    connect_buckets: list[int] = field(default_factory=lambda: [0] * (len(CONNECT_BUCKETS) + 1))  # last: > 30 s
    connect_sum: float = 0.0

    def copy(self) -> _TargetTally:
        return _TargetTally(
            connections_total=self.connections_total,
            connections_open=self.connections_open,
            bytes_to_upstream=self.bytes_to_upstream,
            bytes_to_client=self.bytes_to_client,
            tokens_minted=self.tokens_minted,
            cancels_forwarded=self.cancels_forwarded,
            refused=dict(self.refused),
            token_failures=dict(self.token_failures),
            connect_buckets=list(self.connect_buckets),
            connect_sum=self.connect_sum,
        )


@dataclass(frozen=True)
class _Snapshot:
    tallies: dict[str, _TargetTally]  # bytes_* include open connections' bytes
    draining: bool
    credentials_expiry_seconds: float | None


class ProxyMetrics:
    """The pg proxy's counters, exposed as Prometheus metrics in :attr:`registry` and as :meth:`counters`.

    Every method is thread-safe and cheap (a lock and an integer): the runner calls them from its event loop,
    scrapes come from the health server's threads. Targets are the labels given at construction (each starts
    at 0, so dashboards see every series from the first scrape); an unknown target gets its series on first use.
    """

    def __init__(self, targets: Sequence[str]) -> None:
        self._lock = threading.Lock()
        self._tallies: dict[str, _TargetTally] = {target: _TargetTally() for target in targets}
        self._live: LiveBytesSource | None = None
        # The bytes counters last reported, so a scrape can never report less than an earlier one (see live_bytes).
        self._reported_bytes: dict[tuple[str, str], int] = {}
        self._draining = False
        self._expiry_source: Callable[[], datetime | None] | None = None
        self._now: Callable[[], datetime] = utc_now
        self.registry = CollectorRegistry()
        self.registry.register(_PgCollector(self))

    def _tally(self, target: str) -> _TargetTally:
        # Called with the lock held.
        tally = self._tallies.get(target)
        if tally is None:
            tally = self._tallies[target] = _TargetTally()
        return tally

    def connection_opened(self, target: str) -> None:
        with self._lock:
            tally = self._tally(target)
            tally.connections_total += 1
            tally.connections_open += 1

    def connection_closed(self, target: str, bytes_up: int, bytes_down: int) -> None:
        """A connection ended, having relayed ``bytes_up`` to the upstream and ``bytes_down`` to the client.

        Take the connection out of what the :meth:`live_bytes` source lists *before* calling this: its bytes are
        then briefly counted nowhere (a scrape in between repeats the previous value), never twice.
        """
        with self._lock:
            tally = self._tally(target)
            tally.connections_open -= 1
            tally.bytes_to_upstream += bytes_up
            tally.bytes_to_client += bytes_down

    def connection_refused(self, target: str, reason: str) -> None:
        """A client was refused (one of :data:`REFUSAL_REASONS`), after connection_opened; closed as any other."""
        with self._lock:
            refused = self._tally(target).refused
            refused[reason] = refused.get(reason, 0) + 1

    def token_minted(self, target: str) -> None:
        with self._lock:
            self._tally(target).tokens_minted += 1

    def token_failed(self, target: str, reason: str) -> None:
        with self._lock:
            failures = self._tally(target).token_failures
            failures[reason] = failures.get(reason, 0) + 1

    def cancel_forwarded(self, target: str) -> None:
        with self._lock:
            self._tally(target).cancels_forwarded += 1

    def upstream_connect(self, target: str, seconds: float) -> None:
        """How long one upstream connect took (TCP + TLS + login), for the histogram."""
        with self._lock:
            tally = self._tally(target)
            tally.connect_buckets[bisect.bisect_left(CONNECT_BUCKETS, seconds)] += 1
            tally.connect_sum += seconds

    def set_draining(self, draining: bool) -> None:
        with self._lock:
            self._draining = draining

    def live_bytes(self, source: LiveBytesSource) -> None:
        """Where open connections' byte counts come from: ``source()`` lists ``(target, up, down)`` per open one.

        It is called at scrape time, from another thread than the relay's, so the relay never touches a metric
        per chunk. It must be quick, safe to call from any thread (iterate over a copy) and not call back into
        these metrics. The bytes counters are closed + live; since a connection leaves the source before its
        final bytes are added (see :meth:`connection_closed`), a scrape in that gap repeats the previous value
        rather than going down: a counter going down is a reset to Prometheus.
        """
        with self._lock:
            self._live = source

    def credentials_expiry(
        self, source: Callable[[], datetime | None], now: Callable[[], datetime] | None = None
    ) -> None:
        """Where the current credentials' expiry comes from (None: long-term keys, and the gauge is absent).

        Called at scrape time: it must not do I/O (use the credentials in hand, not a refresh).
        """
        with self._lock:
            self._expiry_source = source
            self._now = now or utc_now

    def _snapshot(self) -> _Snapshot:
        with self._lock:
            # Closed bytes are read before the live ones: together with connection_closed's ordering, a
            # connection is then counted once or (briefly) not at all, never twice.
            tallies = {target: tally.copy() for target, tally in self._tallies.items()}
            for target, up, down in list(self._live()) if self._live else []:
                tally = tallies.setdefault(target, _TargetTally())
                tally.bytes_to_upstream += up
                tally.bytes_to_client += down
            for target, tally in tallies.items():
                tally.bytes_to_upstream = self._monotonic(target, TO_UPSTREAM, tally.bytes_to_upstream)
                tally.bytes_to_client = self._monotonic(target, TO_CLIENT, tally.bytes_to_client)
            expiry = self._expiry_source() if self._expiry_source else None
            seconds = None if expiry is None else (expiry - self._now()).total_seconds()
            return _Snapshot(tallies=tallies, draining=self._draining, credentials_expiry_seconds=seconds)

    def _monotonic(self, target: str, direction: str, value: int) -> int:
        # Called with the lock held.
        key = (target, direction)
        reported = max(self._reported_bytes.get(key, 0), value)
        self._reported_bytes[key] = reported
        return reported

    def text(self) -> bytes:
        """The ``/metrics`` body (Prometheus text format, :data:`CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)

    def counters(self) -> dict[str, int]:
        """Totals across targets: connections_total, connections_open, refused_<reason> (every known reason),
        tokens_minted, token_failures, bytes_to_upstream, bytes_to_client, cancels_forwarded, upstream_connects."""
        tallies = list(self._snapshot().tallies.values())
        reasons = list(REFUSAL_REASONS) + sorted({r for t in tallies for r in t.refused} - set(REFUSAL_REASONS))
        totals = {
            "connections_total": sum(t.connections_total for t in tallies),
            "connections_open": sum(t.connections_open for t in tallies),
            **{f"refused_{reason}": sum(t.refused.get(reason, 0) for t in tallies) for reason in reasons},
            "tokens_minted": sum(t.tokens_minted for t in tallies),
            "token_failures": sum(sum(t.token_failures.values()) for t in tallies),
            "bytes_to_upstream": sum(t.bytes_to_upstream for t in tallies),
            "bytes_to_client": sum(t.bytes_to_client for t in tallies),
            "cancels_forwarded": sum(t.cancels_forwarded for t in tallies),
            "upstream_connects": sum(sum(t.connect_buckets) for t in tallies),
        }
        return totals


class _PgCollector(Collector):
    """Turns one :class:`ProxyMetrics` snapshot into metric families (no ``_created`` series: none is useful)."""

    def __init__(self, metrics: ProxyMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        snapshot = self._metrics._snapshot()
        yield from _connection_families(snapshot.tallies)
        yield from _token_families(snapshot.tallies)
        yield _connect_histogram(snapshot.tallies)
        yield GaugeMetricFamily(
            "sigv4_proxy_pg_draining",
            "1 while the proxy drains (SIGTERM/SIGINT): new clients are refused, open sessions may finish; else 0.",
            value=1 if snapshot.draining else 0,
        )
        if snapshot.credentials_expiry_seconds is not None:
            yield GaugeMetricFamily(
                "sigv4_proxy_pg_credentials_expiry_seconds",
                "Seconds until the AWS credentials in use expire (negative once expired); "
                "absent for long-term access keys, which do not expire.",
                value=snapshot.credentials_expiry_seconds,
            )


def _connection_families(tallies: dict[str, _TargetTally]) -> Iterator[Metric]:
    open_ = GaugeMetricFamily(
        "sigv4_proxy_pg_connections_open",
        "Client connections open now, logins in progress included.",
        labels=["target"],
    )
    total = CounterMetricFamily(
        "sigv4_proxy_pg_connections_total",
        "Client connections accepted, refused ones included (see connections_refused_total).",
        labels=["target"],
    )
    refused = CounterMetricFamily(
        "sigv4_proxy_pg_connections_refused_total",
        "Client connections the proxy ended with its own FATAL error (or closed), by reason.",
        labels=["target", "reason"],
    )
    relayed = CounterMetricFamily(
        "sigv4_proxy_pg_bytes_total",
        "Bytes relayed after login, open connections included: to_upstream (client to database) and to_client.",
        labels=["target", "direction"],
    )
    cancels = CounterMetricFamily(
        "sigv4_proxy_pg_cancels_forwarded_total",
        "CancelRequests forwarded to the upstream database.",
        labels=["target"],
    )
    for target, tally in tallies.items():
        open_.add_metric([target], tally.connections_open)
        total.add_metric([target], tally.connections_total)
        for reason, count in tally.refused.items():
            refused.add_metric([target, reason], count)
        relayed.add_metric([target, TO_UPSTREAM], tally.bytes_to_upstream)
        relayed.add_metric([target, TO_CLIENT], tally.bytes_to_client)
        cancels.add_metric([target], tally.cancels_forwarded)
    yield from (open_, total, refused, relayed, cancels)


def _token_families(tallies: dict[str, _TargetTally]) -> Iterator[Metric]:
    minted = CounterMetricFamily(
        "sigv4_proxy_pg_tokens_minted_total",
        "IAM authentication tokens signed (one per upstream login).",
        labels=["target"],
    )
    failed = CounterMetricFamily(
        "sigv4_proxy_pg_token_failures_total",
        "Tokens that could not be signed (e.g. credentials missing or expired), by reason.",
        labels=["target", "reason"],
    )
    for target, tally in tallies.items():
        minted.add_metric([target], tally.tokens_minted)
        for reason, count in tally.token_failures.items():
            failed.add_metric([target, reason], count)
    yield from (minted, failed)


def _connect_histogram(tallies: dict[str, _TargetTally]) -> Metric:
    histogram = HistogramMetricFamily(
        "sigv4_proxy_pg_upstream_connect_seconds",
        "Time to connect to the upstream database: TCP, TLS and the IAM login.",
        labels=["target"],
    )
    bounds = [*(_bound(b) for b in CONNECT_BUCKETS), "+Inf"]
    for target, tally in tallies.items():
        cumulative = itertools.accumulate(tally.connect_buckets)
        histogram.add_metric([target], list(zip(bounds, cumulative, strict=True)), sum_value=tally.connect_sum)
    return histogram


def _bound(seconds: float) -> str:
    return repr(float(seconds))  # "0.001", "1.0": the form Prometheus' own clients write


# --- health server ------------------------------------------------------------------------------------------------


@dataclass
class HealthState:
    """What the runner tells the health endpoints (plain fields: written by one thread, read by others)."""

    started: bool = False
    draining: bool = False
    open_connections: int = 0
    max_connections: int = 0


class _HeadTooLarge(Exception):
    pass


class _Server(http.server.ThreadingHTTPServer):
    """One thread per connection, at most ``max_clients`` at once; carries what the handlers read."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, server: HealthServer) -> None:
        self.address_family = family
        self.health = server
        self._slots = threading.BoundedSemaphore(server.max_clients)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN (a reverse DNS query, slow on some networks): not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: close at once rather than queue threads without bound
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (reset, broken pipe): a debug line, not a traceback on stderr.
        error = sys.exc_info()[1]
        _log.debug("pg health: %s: %s: %s", client_address[0], type(error).__name__, error)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "sigv4-proxy-pg"
    server: _Server

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def handle_one_request(self) -> None:
        # One request per connection. The head is read here, within one overall deadline and size bound, and
        # handed to BaseHTTPRequestHandler's parser from memory.
        self.close_connection = True
        health = self.server.health
        try:
            head = _read_head(self.connection, health.max_head_bytes, time.monotonic() + health.head_timeout)
        except TimeoutError:
            _log.debug("pg health: %s sent no complete request within %ss", self.client_address[0], health.head_timeout)
            return
        except _HeadTooLarge:
            self.requestline, self.request_version, self.command = "", "HTTP/1.0", ""
            self.send_error(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"request head over {health.max_head_bytes} bytes"
            )
            return
        if not head:
            return
        self.rfile.close()  # unused: the head was read from the socket; closing lets the socket really close
        self.rfile = io.BytesIO(head)
        super().handle_one_request()
        self.close_connection = True

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.command not in ("GET", "HEAD"):
            self._respond(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD\n", headers={"Allow": "GET, HEAD"})
            return False
        return True

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        route = _ROUTES.get(path)
        if route is None:
            self._respond(HTTPStatus.NOT_FOUND, "not found: /startup, /liveness, /readiness, /metrics\n")
            return
        route(self)

    do_HEAD = do_GET

    def startup(self) -> None:
        if self.server.health.state.started:
            self._respond(HTTPStatus.OK, "ok\n")
        else:
            self._respond(HTTPStatus.SERVICE_UNAVAILABLE, "starting\n")

    def liveness(self) -> None:
        self._respond(HTTPStatus.OK, "ok\n")

    def readiness(self) -> None:
        status, body = self.server.health.readiness()
        self._respond(status, body)

    def metrics(self) -> None:
        try:
            body = self.server.health.metrics.text()
        except Exception as exc:
            _log.warning("pg health: /metrics failed: %s: %s", type(exc).__name__, exc)
            self._respond(HTTPStatus.INTERNAL_SERVER_ERROR, "metrics unavailable (see the proxy's log)\n")
            return
        self._respond(HTTPStatus.OK, body, content_type=CONTENT_TYPE_LATEST)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Plain text instead of BaseHTTPRequestHandler's HTML page (parse errors, 431).
        status = HTTPStatus(code)
        self._respond(status, f"{message or status.phrase}\n")

    def _respond(
        self,
        status: HTTPStatus,
        body: str | bytes,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes arrive every few seconds: one debug line each, not a line on stderr.
        _log.debug("pg health: %s %s", self.client_address[0], format % args)


_ROUTES: dict[str, Callable[[_Handler], None]] = {
    "/startup": _Handler.startup,
    "/liveness": _Handler.liveness,
    "/readiness": _Handler.readiness,
    "/metrics": _Handler.metrics,
}


def _read_head(sock: socket.socket, limit: int, deadline: float) -> bytes:
    """The request head (up to and including the blank line), or what arrived before the client closed.

    Raises TimeoutError past ``deadline`` (a monotonic time) and _HeadTooLarge over ``limit`` bytes. Bytes after
    the head are dropped: GET and HEAD have no body, and the connection serves one request.
    """
    buffer = bytearray()
    while True:
        end = _head_end(buffer)
        if end is not None:
            if end > limit:
                raise _HeadTooLarge
            return bytes(buffer[:end])
        if len(buffer) > limit:
            raise _HeadTooLarge
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(min(4096, limit + 4 - len(buffer)))  # TimeoutError when the remaining time passes
        if not chunk:
            return bytes(buffer)
        buffer += chunk


def _head_end(buffer: bytearray) -> int | None:
    # http.client accepts bare LF line ends too, so either blank line ends the head.
    ends = [index + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (index := buffer.find(mark)) >= 0]
    return min(ends) if ends else None


class HealthServer:
    """``/startup``, ``/liveness``, ``/readiness`` and ``/metrics`` over HTTP on a daemon thread.

    ``readiness_checks()`` is called for each ``/readiness`` that passes the local checks (started, not
    draining, under max connections); it lists ``(name, ok, detail)`` and runs on the request's thread.
    """

    def __init__(
        self,
        host: str,
        port: int,
        state: HealthState,
        metrics: ProxyMetrics,
        readiness_checks: Callable[[], list[ReadinessCheck]],
        *,
        head_timeout: float = HEAD_TIMEOUT,
        max_head_bytes: int = MAX_HEAD_BYTES,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.host = host
        self.port = port
        self.state = state
        self.metrics = metrics
        self.readiness_checks = readiness_checks
        self.head_timeout = head_timeout
        self.max_head_bytes = max_head_bytes
        self.max_clients = max_clients
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> int:
        """Bind and serve; returns the bound port. Raises OSError when the address cannot be bound."""
        if self._server is not None or self._closed:
            raise RuntimeError("HealthServer.start() may be called once")
        family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
        self._server = _Server((self.host, self.port), family, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name="sigv4-proxy-pg-health",
            daemon=True,
        )
        self._thread.start()
        self.port = int(self._server.server_address[1])
        return self.port

    def close(self) -> None:
        """Stop serving (idempotent). Requests being answered finish on their own threads."""
        self._closed = True
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def readiness(self) -> tuple[HTTPStatus, str]:
        """The ``/readiness`` answer: status and plain-text body."""
        state = self.state
        if not state.started:
            return HTTPStatus.SERVICE_UNAVAILABLE, "starting\n"
        if state.draining:
            return HTTPStatus.SERVICE_UNAVAILABLE, "draining: new connections are refused\n"
        if state.max_connections and state.open_connections >= state.max_connections:
            full = f"at max connections: {state.open_connections} open of {state.max_connections}\n"
            return HTTPStatus.SERVICE_UNAVAILABLE, full
        try:
            checks = self.readiness_checks()
        except Exception as exc:
            _log.warning("pg health: the readiness checks failed: %s: %s", type(exc).__name__, exc)
            return HTTPStatus.SERVICE_UNAVAILABLE, f"failed readiness checks: {type(exc).__name__} (see the log)\n"
        lines = [f"{'ok' if ok else 'failed'} {name}: {_one_line(detail)}\n" for name, ok, detail in checks]
        status = HTTPStatus.OK if all(ok for _, ok, _ in checks) else HTTPStatus.SERVICE_UNAVAILABLE
        return status, "".join(lines) or "ok\n"

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(text: str) -> str:
    return " ".join(text.split())

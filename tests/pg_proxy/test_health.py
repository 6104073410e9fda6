"""`sigv4-proxy pg`'s health endpoints and metrics (sigv4_proxy.pgproxy.health), with a real HTTP client on
127.0.0.1: every endpoint in every state, the metric names and labels and how they move, the live-bytes collector,
and the server's bounds (request head size and deadline, concurrent clients, methods)."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from sigv4_proxy.pgproxy.health import (  # noqa: E402
    MAX_HEAD_BYTES,
    REFUSAL_REASONS,
    HealthServer,
    HealthState,
    ProxyMetrics,
    ReadinessCheck,
)

DB1 = "abc123.dsql.us-east-1.on.aws"
DB2 = "def456.dsql.us-east-1.on.aws"
GOOD_CHECKS: list[ReadinessCheck] = [
    ("credentials", True, "AKIA****MPLE, valid for 3600 s"),
    ("token", True, f"signed for {DB1}"),
]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --- helpers ----------------------------------------------------------------------------------------------------


class Checks:
    """A readiness_checks callable that counts its calls."""

    def __init__(self, result: list[ReadinessCheck] | None = None) -> None:
        self.result = list(GOOD_CHECKS if result is None else result)
        self.calls = 0
        self.error: Exception | None = None

    def __call__(self) -> list[ReadinessCheck]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def state() -> HealthState:
    return HealthState(max_connections=3)


@pytest.fixture
def metrics() -> ProxyMetrics:
    return ProxyMetrics([DB1])


@pytest.fixture
def serve(state: HealthState, metrics: ProxyMetrics) -> Iterator[Callable[..., HealthServer]]:
    servers: list[HealthServer] = []

    def start(checks: Callable[[], list[ReadinessCheck]] | None = None, **options: Any) -> HealthServer:
        server = HealthServer("127.0.0.1", 0, state, metrics, checks or Checks(), **options)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.close()


def url(server: HealthServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def get(server: HealthServer, path: str, method: str = "GET", **options: Any) -> httpx.Response:
    return httpx.request(method, url(server, path), timeout=5, **options)


def samples(text: str | bytes) -> Samples:
    body = text.decode() if isinstance(text, bytes) else text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection, return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# --- /startup, /liveness ------------------------------------------------------------------------------------------


def test_startup_is_503_until_started_then_200(serve: Callable[..., HealthServer], state: HealthState) -> None:
    server = serve()
    response = get(server, "/startup")
    assert (response.status_code, response.text) == (503, "starting\n")
    state.started = True
    response = get(server, "/startup")
    assert (response.status_code, response.text) == (200, "ok\n")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["server"] == "sigv4-proxy-pg"


def test_liveness_is_200_in_every_state(serve: Callable[..., HealthServer], state: HealthState) -> None:
    server = serve()
    for started, draining, open_connections in [(False, False, 0), (True, False, 3), (True, True, 0)]:
        state.started, state.draining, state.open_connections = started, draining, open_connections
        response = get(server, "/liveness")
        assert (response.status_code, response.text) == (200, "ok\n")


# --- /readiness ---------------------------------------------------------------------------------------------------


def test_readiness_is_503_while_starting_without_running_the_checks(serve: Callable[..., HealthServer]) -> None:
    checks = Checks()
    server = serve(checks)
    response = get(server, "/readiness")
    assert (response.status_code, response.text) == (503, "starting\n")
    assert checks.calls == 0


def test_readiness_lists_every_check_when_ready(serve: Callable[..., HealthServer], state: HealthState) -> None:
    checks = Checks()
    server = serve(checks)
    state.started = True
    response = get(server, "/readiness")
    assert response.status_code == 200
    assert response.text == f"ok credentials: AKIA****MPLE, valid for 3600 s\nok token: signed for {DB1}\n"
    assert checks.calls == 1


def test_readiness_is_503_listing_a_failing_check(serve: Callable[..., HealthServer], state: HealthState) -> None:
    checks = Checks(
        [
            ("credentials", True, "AKIA****MPLE, valid for 3600 s"),
            ("token", True, f"signed for {DB1}"),
            (f"upstream {DB1}", False, "connection refused"),
        ]
    )
    server = serve(checks)
    state.started = True
    response = get(server, "/readiness")
    assert response.status_code == 503
    assert response.text == (
        f"ok credentials: AKIA****MPLE, valid for 3600 s\nok token: signed for {DB1}\n"
        f"failed upstream {DB1}: connection refused\n"
    )


def test_readiness_keeps_one_line_per_check(serve: Callable[..., HealthServer], state: HealthState) -> None:
    server = serve(Checks([("credentials", False, "the AWS SSO session has expired:\n  run `aws sso login`\r\n")]))
    state.started = True
    response = get(server, "/readiness")
    assert response.status_code == 503
    assert response.text == "failed credentials: the AWS SSO session has expired: run `aws sso login`\n"


def test_readiness_turns_503_as_soon_as_draining_starts(serve: Callable[..., HealthServer], state: HealthState) -> None:
    checks = Checks()
    server = serve(checks)
    state.started = True
    assert get(server, "/readiness").status_code == 200
    state.draining = True
    response = get(server, "/readiness")
    assert (response.status_code, response.text) == (503, "draining: new connections are refused\n")
    assert checks.calls == 1  # only the first request ran them


def test_readiness_is_503_at_max_connections(serve: Callable[..., HealthServer], state: HealthState) -> None:
    server = serve()
    state.started = True
    state.open_connections = 2
    assert get(server, "/readiness").status_code == 200
    state.open_connections = 3
    response = get(server, "/readiness")
    assert (response.status_code, response.text) == (503, "at max connections: 3 open of 3\n")
    state.open_connections = 2
    assert get(server, "/readiness").status_code == 200


def test_readiness_checks_that_raise_make_it_503_and_are_logged(
    serve: Callable[..., HealthServer], state: HealthState, caplog: pytest.LogCaptureFixture
) -> None:
    checks = Checks()
    checks.error = RuntimeError("the event loop is gone")
    server = serve(checks)
    state.started = True
    with caplog.at_level(logging.WARNING, logger="sigv4_proxy.pg"):
        response = get(server, "/readiness")
    assert (response.status_code, response.text) == (503, "failed readiness checks: RuntimeError (see the log)\n")
    assert [r.getMessage() for r in caplog.records if r.name == "sigv4_proxy.pg"] == [
        "pg health: the readiness checks failed: RuntimeError: the event loop is gone"
    ]


def test_readiness_ignores_the_query_string(serve: Callable[..., HealthServer], state: HealthState) -> None:
    server = serve()
    state.started = True
    response = get(server, "/readiness?verbose")
    assert (response.status_code, response.text.splitlines()[0]) == (
        200,
        "ok credentials: AKIA****MPLE, valid for 3600 s",
    )


# --- /metrics -------------------------------------------------------------------------------------------------------


def test_metrics_endpoint_serves_the_registry(serve: Callable[..., HealthServer], metrics: ProxyMetrics) -> None:
    server = serve()
    metrics.connection_opened(DB1)
    response = get(server, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == prometheus_client.CONTENT_TYPE_LATEST
    assert value(samples(response.text), "sigv4_proxy_pg_connections_total", target=DB1) == 1
    assert response.content == metrics.text()


def test_metrics_failure_is_a_500_and_logged(
    serve: Callable[..., HealthServer], metrics: ProxyMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> list[tuple[str, int, int]]:
        raise RuntimeError("set changed size during iteration")

    metrics.live_bytes(broken)
    server = serve()
    with caplog.at_level(logging.WARNING, logger="sigv4_proxy.pg"):
        response = get(server, "/metrics")
    assert (response.status_code, response.text) == (500, "metrics unavailable (see the proxy's log)\n")
    assert "pg health: /metrics failed: RuntimeError: set changed size during iteration" in caplog.messages


# --- methods, paths, bounds -------------------------------------------------------------------------------------


def test_head_answers_the_headers_without_a_body(serve: Callable[..., HealthServer], state: HealthState) -> None:
    server = serve()
    state.started = True
    response = get(server, "/startup", method="HEAD")
    assert (response.status_code, response.content, response.headers["content-length"]) == (200, b"", "3")
    assert get(server, "/metrics", method="HEAD").content == b""


def test_unknown_paths_are_404(serve: Callable[..., HealthServer]) -> None:
    server = serve()
    for path in ["/", "/healthz", "/readiness/", "/quitquitquit", "/metrics/x"]:
        response = get(server, path)
        assert (response.status_code, response.text) == (404, "not found: /startup, /liveness, /readiness, /metrics\n")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_are_405(serve: Callable[..., HealthServer], method: str) -> None:
    server = serve()
    response = get(server, "/readiness", method=method)
    assert (response.status_code, response.text, response.headers["allow"]) == (405, "only GET and HEAD\n", "GET, HEAD")


def test_a_request_head_over_8_kib_is_refused(serve: Callable[..., HealthServer], state: HealthState) -> None:
    server = serve()
    state.started = True
    request = b"GET /startup HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
    fill = MAX_HEAD_BYTES - len(request) - len(b"\r\n\r\n")
    exactly_at_limit = request + b"a" * fill + b"\r\n\r\n"
    assert len(exactly_at_limit) == MAX_HEAD_BYTES
    assert raw_exchange(server.port, exactly_at_limit).startswith(b"HTTP/1.0 200 OK\r\n")

    answer = raw_exchange(server.port, request + b"a" * (fill + 1) + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 431 Request Header Fields Too Large\r\n")
    assert answer.endswith(b"\r\n\r\nrequest head over 8192 bytes\n")
    # A real client too, and a head that never ends (no blank line) is cut at the same bound.
    response = get(server, "/startup", headers={"X-Pad": "a" * 9000})
    assert (response.status_code, response.text) == (431, "request head over 8192 bytes\n")
    assert raw_exchange(server.port, b"GET /startup HTTP/1.1\r\nX-Pad: " + b"a" * 20000).startswith(b"HTTP/1.0 431 ")


def test_a_bare_lf_head_is_served(serve: Callable[..., HealthServer], state: HealthState) -> None:
    server = serve()
    state.started = True
    assert raw_exchange(server.port, b"GET /startup HTTP/1.0\n\n").endswith(b"\r\n\r\nok\n")


def test_a_request_head_must_arrive_within_the_deadline_in_total(serve: Callable[..., HealthServer]) -> None:
    """A client dribbling a byte every 50 ms is cut at the deadline: each byte does not restart the clock."""
    server = serve(head_timeout=0.5)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /startup HTTP/1.1\r\n")
        answer = b"not closed"
        while time.monotonic() - start < 5:
            try:
                sock.sendall(b"X")
            except OSError:  # reset: the server is gone
                answer = b""
                break
            sock.settimeout(0.05)
            try:
                answer = sock.recv(1024)
            except TimeoutError:
                continue
            break
    elapsed = time.monotonic() - start
    assert answer == b""  # closed without an answer
    assert 0.45 <= elapsed < 2.5


def test_connections_over_max_clients_are_closed_at_once(
    serve: Callable[..., HealthServer], state: HealthState
) -> None:
    server = serve(max_clients=2)
    state.started = True
    stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
    try:
        for sock in stalled:
            sock.sendall(b"GET /startup HTTP/1.1\r\n")  # and never the blank line
        # Accepted in order, the two stalled clients hold both slots: the third is closed unanswered.
        assert raw_exchange(server.port, b"GET /startup HTTP/1.0\r\n\r\n") == b""
    finally:
        for sock in stalled:
            sock.close()
    # Their threads end with their connections; then clients are served again.
    deadline = time.monotonic() + 5
    while (answer := raw_exchange(server.port, b"GET /startup HTTP/1.0\r\n\r\n")) == b"":
        assert time.monotonic() < deadline, "slots not released after the stalled clients left"
        time.sleep(0.02)
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n")


def test_a_client_reset_is_a_debug_line_not_a_traceback(
    serve: Callable[..., HealthServer], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve()
    with caplog.at_level(logging.DEBUG, logger="sigv4_proxy.pg"):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET /startup HTTP/1.1\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
        deadline = time.monotonic() + 5
        while not any("ConnectionResetError" in message for message in caplog.messages):
            assert time.monotonic() < deadline, caplog.messages
            time.sleep(0.01)
    [line] = [m for m in caplog.messages if "ConnectionResetError" in m]
    assert line.startswith("pg health: 127.0.0.1: ConnectionResetError: [Errno ")  # the errno differs by OS
    assert "Traceback" not in capsys.readouterr().err


def test_start_binds_once_and_close_is_idempotent(state: HealthState, metrics: ProxyMetrics) -> None:
    server = HealthServer("127.0.0.1", 0, state, metrics, Checks())
    port = server.start()
    assert port == server.port != 0
    with pytest.raises(RuntimeError, match=r"^HealthServer.start\(\) may be called once$"):
        server.start()
    assert httpx.get(f"http://127.0.0.1:{port}/liveness", timeout=5).text == "ok\n"
    server.close()
    server.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/liveness", timeout=5)
    HealthServer("127.0.0.1", 0, state, metrics, Checks()).close()  # never started: nothing to stop


def test_a_port_in_use_raises_oserror(state: HealthState, metrics: ProxyMetrics) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HealthServer("127.0.0.1", taken.getsockname()[1], state, metrics, Checks())
        with pytest.raises(OSError, match="Address already in use"):
            server.start()
        server.close()


def test_ipv6_loopback(state: HealthState, metrics: ProxyMetrics) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with HealthServer("::1", 0, state, metrics, Checks()) as server:
        assert httpx.get(f"http://[::1]:{server.port}/liveness", timeout=5).text == "ok\n"


# --- ProxyMetrics ---------------------------------------------------------------------------------------------------

METRIC_NAMES = {
    "sigv4_proxy_pg_connections_open",
    "sigv4_proxy_pg_connections",
    "sigv4_proxy_pg_connections_refused",
    "sigv4_proxy_pg_bytes",
    "sigv4_proxy_pg_cancels_forwarded",
    "sigv4_proxy_pg_tokens_minted",
    "sigv4_proxy_pg_token_failures",
    "sigv4_proxy_pg_upstream_connect_seconds",
    "sigv4_proxy_pg_draining",
}


def test_every_series_starts_at_zero_for_every_target() -> None:
    metrics = ProxyMetrics([DB1, DB2])
    families = {family.name: family for family in text_string_to_metric_families(metrics.text().decode())}
    assert set(families) == METRIC_NAMES  # no credentials expiry gauge without a source
    assert all(family.documentation for family in families.values())
    found = samples(metrics.text())
    for target in (DB1, DB2):
        assert value(found, "sigv4_proxy_pg_connections_open", target=target) == 0
        assert value(found, "sigv4_proxy_pg_connections_total", target=target) == 0
        for reason in REFUSAL_REASONS:
            assert value(found, "sigv4_proxy_pg_connections_refused_total", target=target, reason=reason) == 0
        for direction in ("to_upstream", "to_client"):
            assert value(found, "sigv4_proxy_pg_bytes_total", target=target, direction=direction) == 0
        assert value(found, "sigv4_proxy_pg_tokens_minted_total", target=target) == 0
        assert value(found, "sigv4_proxy_pg_cancels_forwarded_total", target=target) == 0
        assert value(found, "sigv4_proxy_pg_upstream_connect_seconds_count", target=target) == 0
        assert value(found, "sigv4_proxy_pg_upstream_connect_seconds_bucket", target=target, le="+Inf") == 0
    assert value(found, "sigv4_proxy_pg_draining") == 0
    assert not [key for key in found if key[0] == "sigv4_proxy_pg_token_failures_total"]
    assert not [key for key in found if key[0].endswith("_created")]


def test_metrics_move_with_the_proxy() -> None:
    metrics = ProxyMetrics([DB1, DB2])
    metrics.connection_opened(DB1)
    metrics.connection_opened(DB1)
    metrics.connection_opened(DB2)
    metrics.token_minted(DB1)
    metrics.token_minted(DB1)
    metrics.token_failed(DB2, "credentials")
    metrics.connection_refused(DB2, "credentials")
    metrics.connection_closed(DB2, 10, 20)
    metrics.connection_closed(DB1, 1000, 50000)
    metrics.connection_refused(DB1, "max_connections")
    metrics.cancel_forwarded(DB1)
    metrics.set_draining(True)

    found = samples(metrics.text())
    assert value(found, "sigv4_proxy_pg_connections_total", target=DB1) == 2
    assert value(found, "sigv4_proxy_pg_connections_open", target=DB1) == 1
    assert value(found, "sigv4_proxy_pg_connections_open", target=DB2) == 0
    assert value(found, "sigv4_proxy_pg_connections_refused_total", target=DB1, reason="max_connections") == 1
    assert value(found, "sigv4_proxy_pg_connections_refused_total", target=DB2, reason="credentials") == 1
    assert value(found, "sigv4_proxy_pg_connections_refused_total", target=DB2, reason="max_connections") == 0
    assert value(found, "sigv4_proxy_pg_bytes_total", target=DB1, direction="to_upstream") == 1000
    assert value(found, "sigv4_proxy_pg_bytes_total", target=DB1, direction="to_client") == 50000
    assert value(found, "sigv4_proxy_pg_bytes_total", target=DB2, direction="to_client") == 20
    assert value(found, "sigv4_proxy_pg_tokens_minted_total", target=DB1) == 2
    assert value(found, "sigv4_proxy_pg_token_failures_total", target=DB2, reason="credentials") == 1
    assert value(found, "sigv4_proxy_pg_cancels_forwarded_total", target=DB1) == 1
    assert value(found, "sigv4_proxy_pg_draining") == 1

    assert metrics.counters() == {
        "connections_total": 3,
        "connections_open": 1,
        **{f"refused_{reason}": 0 for reason in REFUSAL_REASONS},
        "refused_max_connections": 1,
        "refused_credentials": 1,
        "tokens_minted": 2,
        "token_failures": 1,
        "bytes_to_upstream": 1010,
        "bytes_to_client": 50020,
        "cancels_forwarded": 1,
        "upstream_connects": 0,
    }
    metrics.set_draining(False)
    assert value(samples(metrics.text()), "sigv4_proxy_pg_draining") == 0


def test_an_unknown_target_or_reason_gets_its_series() -> None:
    metrics = ProxyMetrics([DB1])
    metrics.connection_refused(DB2, "something_new")
    found = samples(metrics.text())
    assert value(found, "sigv4_proxy_pg_connections_refused_total", target=DB2, reason="something_new") == 1
    assert value(found, "sigv4_proxy_pg_connections_total", target=DB2) == 0
    assert metrics.counters()["refused_something_new"] == 1


def test_upstream_connect_histogram_buckets() -> None:
    metrics = ProxyMetrics([DB1])
    for seconds in (0.0004, 0.001, 0.004, 0.2, 45.0):
        metrics.upstream_connect(DB1, seconds)
    found = samples(metrics.text())

    def bucket(le: str) -> float:
        return value(found, "sigv4_proxy_pg_upstream_connect_seconds_bucket", target=DB1, le=le)

    # Bounds are inclusive (le): 1 ms falls in the first bucket; 45 s only in +Inf.
    assert [bucket(le) for le in ("0.001", "0.0025", "0.005", "0.1", "0.25", "30.0", "+Inf")] == [2, 2, 3, 3, 4, 4, 5]
    assert value(found, "sigv4_proxy_pg_upstream_connect_seconds_count", target=DB1) == 5
    assert value(found, "sigv4_proxy_pg_upstream_connect_seconds_sum", target=DB1) == pytest.approx(45.2054)
    assert metrics.counters()["upstream_connects"] == 5


def test_live_bytes_of_open_connections_are_added_at_scrape_time() -> None:
    metrics = ProxyMetrics([DB1, DB2])
    live: dict[str, list[Any]] = {}  # what the door holds: session -> [target, up, down]
    metrics.live_bytes(lambda: [(target, up, down) for target, up, down in list(live.values())])

    def bytes_of(target: str) -> tuple[float, float]:
        found = samples(metrics.text())
        return (
            value(found, "sigv4_proxy_pg_bytes_total", target=target, direction="to_upstream"),
            value(found, "sigv4_proxy_pg_bytes_total", target=target, direction="to_client"),
        )

    metrics.connection_opened(DB1)
    metrics.connection_closed(DB1, 100, 200)  # one closed connection
    live["a"] = [DB1, 0, 0]
    live["b"] = [DB2, 5, 7]
    metrics.connection_opened(DB1)
    metrics.connection_opened(DB2)
    assert bytes_of(DB1) == (100, 200)
    assert bytes_of(DB2) == (5, 7)
    live["a"][1:] = [40, 4000]  # the relay counts on its session, touching no metric
    assert bytes_of(DB1) == (140, 4200)
    assert (metrics.counters()["bytes_to_upstream"], metrics.counters()["bytes_to_client"]) == (145, 4207)

    # The door's order on close: out of the live set, then connection_closed. A scrape in between repeats the last
    # value instead of going down (a counter going down is a reset to Prometheus).
    live["a"][1:] = [50, 5000]
    del live["a"]
    assert bytes_of(DB1) == (140, 4200)
    metrics.connection_closed(DB1, 50, 5000)
    assert bytes_of(DB1) == (150, 5200)
    assert metrics.counters()["connections_open"] == 1


def test_credentials_expiry_gauge() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    expiry: list[datetime | None] = [None]
    metrics = ProxyMetrics([DB1])
    metrics.credentials_expiry(lambda: expiry[0], now=lambda: now)

    def gauge() -> float | None:
        return samples(metrics.text()).get(("sigv4_proxy_pg_credentials_expiry_seconds", frozenset()))

    assert gauge() is None  # long-term keys: absent
    expiry[0] = now + timedelta(minutes=2)
    assert gauge() == 120
    expiry[0] = now - timedelta(seconds=30)
    assert gauge() == -30
    assert "# HELP sigv4_proxy_pg_credentials_expiry_seconds Seconds until" in metrics.text().decode()


def test_each_proxy_has_its_own_registry() -> None:
    first, second = ProxyMetrics([DB1]), ProxyMetrics([DB1])
    first.connection_opened(DB1)
    assert first.counters()["connections_total"] == 1
    assert second.counters()["connections_total"] == 0
    assert first.registry is not prometheus_client.REGISTRY
    assert b"sigv4_proxy_pg" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)


def test_updates_from_many_threads_while_scraping_add_up() -> None:
    metrics = ProxyMetrics([DB1])
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            metrics.text()

    def work() -> None:
        for _ in range(2000):
            metrics.connection_opened(DB1)
            metrics.token_minted(DB1)
            metrics.connection_closed(DB1, 3, 5)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    scraper.join()
    counters = metrics.counters()
    assert (counters["connections_total"], counters["connections_open"], counters["tokens_minted"]) == (8000, 0, 8000)
    assert (counters["bytes_to_upstream"], counters["bytes_to_client"]) == (24000, 40000)


# --- through a running proxy (the runner wires the state, the metrics and the checks) -----------------------------


def test_a_running_proxy_serves_health_and_live_metrics(proxy_for: Callable[..., Any], dsql_off: Any) -> None:
    from tests.pg_proxy.conftest import pg_connect

    proxy = proxy_for(dsql_off, health_port=0)
    host = dsql_off.host
    base = f"http://127.0.0.1:{proxy.health_port}"
    assert httpx.get(f"{base}/startup", timeout=5).text == "ok\n"
    assert httpx.get(f"{base}/liveness", timeout=5).text == "ok\n"
    ready = httpx.get(f"{base}/readiness", timeout=5)
    assert ready.status_code == 200, ready.text
    lines = ready.text.splitlines()
    assert [line.split(":")[0] for line in lines] == ["ok credentials", "ok token"]
    assert lines[1] == f"ok token: signed for {host}"

    def scrape() -> Samples:
        return samples(httpx.get(f"{base}/metrics", timeout=5).text)

    with pg_connect(proxy) as conn:
        assert conn.execute("SELECT repeat('x', 100000)").fetchone()[0] == "x" * 100000
        during = scrape()
        assert value(during, "sigv4_proxy_pg_connections_open", target=host) == 1
        assert value(during, "sigv4_proxy_pg_tokens_minted_total", target=host) == 1
        # Still open: these bytes can only come from the live-bytes collector.
        assert value(during, "sigv4_proxy_pg_bytes_total", target=host, direction="to_client") > 100000
        assert value(during, "sigv4_proxy_pg_bytes_total", target=host, direction="to_upstream") > 0
        assert value(during, "sigv4_proxy_pg_upstream_connect_seconds_count", target=host) == 1
    deadline = time.monotonic() + 5
    while value(after := scrape(), "sigv4_proxy_pg_connections_open", target=host) != 0:
        assert time.monotonic() < deadline, "the closed connection is still counted as open"
        time.sleep(0.02)
    assert value(after, "sigv4_proxy_pg_connections_total", target=host) == 1
    for direction in ("to_client", "to_upstream"):
        assert value(after, "sigv4_proxy_pg_bytes_total", target=host, direction=direction) >= value(
            during, "sigv4_proxy_pg_bytes_total", target=host, direction=direction
        )
    assert proxy.counters()["bytes_to_client"] == value(
        after, "sigv4_proxy_pg_bytes_total", target=host, direction="to_client"
    )

    assert proxy.drain(timeout=1) == 0
    draining = httpx.get(f"{base}/readiness", timeout=5)
    assert (draining.status_code, draining.text) == (503, "draining: new connections are refused\n")
    assert value(scrape(), "sigv4_proxy_pg_draining") == 1
    assert httpx.get(f"{base}/liveness", timeout=5).status_code == 200

"""Running `sigv4-proxy pg`: the drain (in-process and on SIGTERM), SIGHUP, the start-up connection test, the
banner, text and JSON logs with one line per connection, metrics that move as connections happen, health endpoints
that flip during the drain, and no secret in any log line or on stderr.

The CLI tests run the real command in a child process (``python -m sigv4_proxy.cli pg``) with credentials in
environment variables, as a user or a Kubernetes sidecar would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.emulate_dsql.conftest import Cast
from tests.pg_proxy.test_faults import (
    CONNECTION_LINE,
    LogCapture,
    assert_no_secrets,
    captured_logs,
    connect_through,
    our_fatal,
    raw_login,
)
from tests.support.waiting import wait_until_sync

psycopg = pytest.importorskip("psycopg")
httpx = pytest.importorskip("httpx")
prometheus_parser = pytest.importorskip("prometheus_client.parser")

from sigv4_proxy.emulate.dsql.auth import Identity  # noqa: E402
from sigv4_proxy.emulate.dsql.server import DsqlEmulator  # noqa: E402
from sigv4_proxy.pgproxy.runner import PgProxy  # noqa: E402
from sigv4_proxy.redact import mask_access_key  # noqa: E402

DRAINING = our_fatal(
    "57P03",
    "shutting down: no new connections (open sessions are finishing)",
    "connect again in a moment: a new proxy instance takes over",
)
ProxyFor = Callable[..., PgProxy]


# ------------------------------------------------------------------------------------------------------ helpers


@pytest.fixture
def pg_log(cast: Cast) -> Iterator[LogCapture]:
    """The proxy's log records; none may carry a secret (checked at the end of the test)."""
    with captured_logs(cast.all()) as capture:
        yield capture


def health(proxy: PgProxy, path: str) -> tuple[int, str]:
    assert proxy.health_port is not None
    response = httpx.get(f"http://127.0.0.1:{proxy.health_port}{path}", timeout=10)
    return response.status_code, response.text


def samples(metrics_text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text body, keyed by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in prometheus_parser.text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


def drain_in_background(proxy: PgProxy, timeout: float) -> tuple[threading.Thread, list[int]]:
    """proxy.drain(timeout) on a thread; the list receives its result. Returns once new clients are refused."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(proxy.drain(timeout)), daemon=True)
    thread.start()
    # The door's own flag: readiness turns 503 a moment earlier (start_drain sets the door's flag on its loop).
    wait_until_sync(lambda: proxy.door.draining, what="the drain to start")
    return thread, result


# ------------------------------------------------------------------------------------------ drain (in-process)


def test_drain_lets_an_open_session_finish_and_refuses_newcomers(
    proxy_for: ProxyFor, dsql_off: DsqlEmulator, pg_log: LogCapture
) -> None:
    proxy = proxy_for(dsql_off, health_port=0)
    session = connect_through(proxy)
    assert health(proxy, "/readiness")[0] == 200

    drainer, cut = drain_in_background(proxy, timeout=30)

    assert health(proxy, "/readiness") == (503, "draining: new connections are refused\n")
    assert health(proxy, "/startup") == (200, "ok\n")
    assert health(proxy, "/liveness") == (200, "ok\n")
    assert samples(proxy.metrics_text())[("sigv4_proxy_pg_draining", ())] == 1.0
    assert raw_login(proxy).error == DRAINING
    assert session.execute("SELECT 'still here'").fetchone() == ("still here",)
    assert drainer.is_alive()  # it waits for the open session...
    session.close()
    drainer.join(10)  # ... and ends once it is gone
    assert cut == [0]
    lines = pg_log.wait_for_connection_lines(2)
    assert sorted((line["outcome"], line["reason"]) for line in lines) == [
        ("ok", ""),
        ("refused", DRAINING["M"]),
    ]
    assert proxy.counters()["refused_draining"] == 1


def test_drain_cuts_a_session_still_open_at_the_deadline(
    proxy_for: ProxyFor, dsql_off: DsqlEmulator, pg_log: LogCapture
) -> None:
    proxy = proxy_for(dsql_off)
    with connect_through(proxy) as session:
        started = time.monotonic()
        assert proxy.drain(timeout=0.5) == 1
        assert 0.45 <= time.monotonic() - started < 5
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    (line,) = pg_log.wait_for_connection_lines(1)
    assert (line["outcome"], line["reason"]) == ("ok", "cut: the proxy is stopping"), line
    assert proxy.counters()["connections_open"] == 0


def test_drain_without_sessions_returns_at_once(proxy_for: ProxyFor, dsql_off: DsqlEmulator) -> None:
    proxy = proxy_for(dsql_off)
    serves = connect_through(proxy)
    serves.close()
    wait_until_sync(lambda: proxy.counters()["connections_open"] == 0, what="the session to close")
    started = time.monotonic()
    assert proxy.drain(timeout=30) == 0
    assert time.monotonic() - started < 2


# ----------------------------------------------------------------------------------------- metrics and health


def test_metrics_move_as_connections_happen(proxy_for: ProxyFor, dsql_off: DsqlEmulator, pg_log: LogCapture) -> None:
    proxy = proxy_for(dsql_off, health_port=0)
    host = dsql_off.host
    assert {name: proxy.counters()[name] for name in ("connections_total", "tokens_minted", "bytes_to_client")} == {
        "connections_total": 0,
        "tokens_minted": 0,
        "bytes_to_client": 0,
    }

    with connect_through(proxy) as conn:
        conn.execute("SELECT repeat('x', 100000)").fetchone()
        live = proxy.counters()
        assert (live["connections_total"], live["connections_open"], live["tokens_minted"]) == (1, 1, 1)
        assert live["bytes_to_client"] > 100_000 and live["bytes_to_upstream"] > 0, live  # open ones count too
        assert health(proxy, "/readiness")[0] == 200
    refused = raw_login(proxy, user="no_such_role_for_metrics")
    assert refused.error["C"] == "08006"

    lines = pg_log.wait_for_connection_lines(2)
    counters = proxy.counters()
    assert (counters["connections_total"], counters["connections_open"], counters["tokens_minted"]) == (2, 0, 2)
    assert counters["refused_upstream_refused"] == 1
    assert counters["bytes_to_upstream"] == sum(int(line["up"]) for line in lines)
    assert counters["bytes_to_client"] == sum(int(line["down"]) for line in lines)

    status, body = health(proxy, "/metrics")
    assert status == 200
    scraped = samples(body)
    assert scraped[("sigv4_proxy_pg_connections_total", (("target", host),))] == 2
    assert scraped[("sigv4_proxy_pg_connections_open", (("target", host),))] == 0
    assert scraped[("sigv4_proxy_pg_tokens_minted_total", (("target", host),))] == 2
    assert (
        scraped[("sigv4_proxy_pg_connections_refused_total", (("reason", "upstream_refused"), ("target", host)))] == 1
    )
    assert scraped[("sigv4_proxy_pg_connections_refused_total", (("reason", "draining"), ("target", host)))] == 0
    assert (
        scraped[("sigv4_proxy_pg_bytes_total", (("direction", "to_client"), ("target", host)))]
        == (counters["bytes_to_client"])
    )
    assert (
        scraped[("sigv4_proxy_pg_bytes_total", (("direction", "to_upstream"), ("target", host)))]
        == (counters["bytes_to_upstream"])
    )
    assert scraped[("sigv4_proxy_pg_upstream_connect_seconds_count", (("target", host),))] == 1
    assert scraped[("sigv4_proxy_pg_draining", ())] == 0


def test_readiness_lists_its_checks_and_turns_503_at_max_connections(
    proxy_for: ProxyFor, dsql_off: DsqlEmulator, cast: Cast
) -> None:
    proxy = proxy_for(dsql_off, health_port=0, max_connections=1)
    key = mask_access_key(cast.admin.access_key_id)
    assert health(proxy, "/readiness") == (
        200,
        f"ok credentials: {key}, long-term\nok token: signed for {dsql_off.host}\n",
    )
    with connect_through(proxy):
        assert health(proxy, "/readiness") == (503, "at max connections: 1 open of 1\n")
    wait_until_sync(lambda: health(proxy, "/readiness")[0] == 200, what="readiness after the close")


# --------------------------------------------------------------------------------------------- no secrets (in-process)


def test_no_secret_in_any_log_line_of_a_busy_proxy(
    proxy_for: ProxyFor, dsql_off: DsqlEmulator, cast: Cast, pg_log: LogCapture
) -> None:
    """Session credentials (with a session token) through logins, an upstream refusal with its diagnosis, a
    credentials reload and a drain: the raw messages and the formatted lines alike."""
    proxy = proxy_for(dsql_off, cast.session)
    with connect_through(proxy) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("admin",)
    assert raw_login(proxy, user="no_such_role_for_secrets").error["C"] == "08006"
    proxy.reload_credentials()
    assert proxy.drain(timeout=1) == 0
    pg_log.wait_for_connection_lines(2)

    messages = pg_log.messages()
    assert any(message.startswith("pg: diagnosis: ") for message in messages), messages
    assert f"pg: credentials reloaded: {mask_access_key(cast.session.access_key_id)}" in messages
    # the pg_log fixture then scans every record, raw and formatted as text and JSON, for the cast's secrets


# ------------------------------------------------------------------------------------------------ the real CLI


class ChildLines:
    """A child's stderr read on a thread, so the test can wait for a line without blocking on the pipe."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        assert process.stderr is not None
        self._thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first line that `pattern` matches (re.search), waiting for it."""
        compiled = re.compile(pattern)
        found: list[re.Match[str]] = []

        def match() -> bool:
            found[:] = [m for m in map(compiled.search, self.lines) if m]
            return bool(found)

        with self._changed:
            if not self._changed.wait_for(match, timeout):
                raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines))
        return found[0]

    def matching(self, pattern: str) -> list[str]:
        with self._changed:
            return [line for line in self.lines if re.search(pattern, line)]

    def join(self) -> list[str]:
        self._thread.join(10)
        return list(self.lines)


BANNER = (
    r'^sigv4-proxy pg: 127\.0\.0\.1:(?P<port>\d+) -> (?P<host>\S+):5432 \(dsql\); connect with "host=127\.0\.0\.1 '
    r'port=(?P=port) user=admin dbname=postgres sslmode=disable" \(no password: the proxy signs a token per '
    r"connection\)$"
)


@pytest.fixture
def run_cli(dsql_off: DsqlEmulator, cast: Cast) -> Iterator[Callable[..., tuple[subprocess.Popen[str], ChildLines]]]:
    """run_cli(*flags, identity=cast.session) -> (process, stderr lines): `sigv4-proxy pg` for dsql_off's cluster
    with the identity's credentials in AWS_* variables; killed at teardown if still running."""
    children: list[subprocess.Popen[str]] = []

    def run(*flags: str, identity: Identity = cast.session) -> tuple[subprocess.Popen[str], ChildLines]:
        env = {name: value for name, value in os.environ.items() if not name.startswith(("PG", "SIGV4_PROXY_"))}
        env.update(AWS_ACCESS_KEY_ID=identity.access_key_id, AWS_SECRET_ACCESS_KEY=identity.secret_access_key)
        if identity.session_token:
            env["AWS_SESSION_TOKEN"] = identity.session_token
        command = [
            sys.executable, "-m", "sigv4_proxy.cli", "pg",
            "--hostname", dsql_off.host,
            "--hostaddr", f"{dsql_off.listen_host}:{dsql_off.port}",
            "--upstream-sslrootcert", str(dsql_off.ca_file),
            "--listen", "127.0.0.1:0",
            *flags,
        ]  # fmt: skip
        child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
        children.append(child)
        return child, ChildLines(child)

    yield run
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(10)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def cli_connect(port: int) -> Any:
    return psycopg.connect(host="127.0.0.1", port=port, user="admin", dbname="postgres", sslmode="disable",
                           connect_timeout=10, autocommit=True)  # fmt: skip


def test_cli_banner_sighup_and_a_clean_sigterm(run_cli: Any, dsql_off: DsqlEmulator, cast: Cast) -> None:
    host = dsql_off.host
    child, stderr = run_cli("--run-connection-test", "--max-sigterm-delay", "10s")
    banner = stderr.wait_for(BANNER)
    assert banner["host"] == host
    port = int(banner["port"])
    stderr.wait_for(rf"INFO  pg: connection test: {re.escape(host)}: logged in as admin$")
    key = re.escape(mask_access_key(cast.session.access_key_id))
    stderr.wait_for(rf"^sigv4-proxy pg: signing with access key {key}, from env, with session token$")

    with cli_connect(port) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("admin",)
    child.send_signal(signal.SIGHUP)
    stderr.wait_for(rf"INFO  pg: credentials reloaded: {key}$")
    with cli_connect(port) as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)
    wait_until_sync(lambda: len(stderr.matching(r"INFO  pg: \S+ 127\.0\.0\.1:\d+ user=admin db=postgres ok ")) == 2,
                    what="two connection lines")  # fmt: skip

    child.send_signal(signal.SIGTERM)
    assert child.wait(15) == 0
    lines = stderr.join()
    assert stderr.matching(r"INFO  pg: stopping: 0 open connection\(s\) get up to 10s to finish")
    assert lines[-1].endswith("INFO  pg: stopped cleanly"), lines
    assert len(stderr.matching(r" pg: \S+ \S+ user=")) == 2, lines  # one line per connection, the test login not one
    assert_no_secrets(lines, cast.all())


def test_cli_sigterm_cuts_sessions_at_the_deadline_exit_1_with_json_logs(
    run_cli: Any, dsql_off: DsqlEmulator, cast: Cast
) -> None:
    child, stderr = run_cli("--json-log", "--max-sigterm-delay", "1s")
    port = int(stderr.wait_for(r'"message": "sigv4-proxy pg: 127\.0\.0\.1:(?P<port>\d+) -> ')["port"])
    held = cli_connect(port)
    try:
        assert held.execute("SELECT 1").fetchone() == (1,)
        child.send_signal(signal.SIGTERM)
        stderr.wait_for(r'"message": "pg: stopping: 1 open connection\(s\) get up to 1s to finish')
        newcomer = raw_login_at(port)
        assert newcomer.error == DRAINING
        assert child.wait(15) == 1
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    finally:
        held.close()

    lines = stderr.join()
    records = [json.loads(line) for line in lines]  # every line, the banner's too, is a JSON object
    messages = [(record["level"], record["logger"], record["message"]) for record in records]
    assert re.fullmatch(BANNER, messages[0][2]), messages[0]
    assert ("warning", "sigv4_proxy.pg", "pg: 1 connection(s) still open at the end of the drain were closed") in (
        messages
    )
    connections = [found.groupdict() for _, _, m in messages if (found := CONNECTION_LINE.fullmatch(m))]
    assert sorted((line["outcome"], line["reason"]) for line in connections) == [
        ("ok", "cut: the proxy is stopping"),
        ("refused", DRAINING["M"]),
    ], messages
    assert_no_secrets(lines, cast.all())


def raw_login_at(port: int) -> Any:
    from tests.emulate_dsql import rawclient

    return rawclient.login(("127.0.0.1", port), user="admin", password="", sni=None, tls="none")


def test_cli_second_signal_stops_at_once(run_cli: Any, cast: Cast) -> None:
    child, stderr = run_cli("--max-sigterm-delay", "60s")
    port = int(stderr.wait_for(BANNER)["port"])
    with cli_connect(port) as held:
        held.execute("SELECT 1")
        child.send_signal(signal.SIGTERM)
        stderr.wait_for(r"pg: stopping: 1 open connection\(s\) get up to 60s to finish")
        started = time.monotonic()
        child.send_signal(signal.SIGTERM)
        assert child.wait(15) == 1
        assert time.monotonic() - started < 5
    assert_no_secrets(stderr.join(), cast.all())


def test_cli_failed_connection_test_exits_1_before_serving(run_cli: Any, dsql_off: DsqlEmulator, cast: Cast) -> None:
    child, stderr = run_cli("--run-connection-test", "--test-user", "no_such_role_at_start")
    assert child.wait(30) == 1
    lines = stderr.join()
    assert lines[-1] == (
        f"ERROR: connection test failed: {dsql_off.host}: 08006 unable to accept connection, access denied"
    ), lines
    assert not stderr.matching(r"^sigv4-proxy pg: "), lines  # no banner: nothing was served
    assert_no_secrets(lines, cast.all())

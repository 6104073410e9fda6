"""The relay's edges: what a client sends before it half-closes is delivered; a client that stops reading holds
the upstream back instead of filling the proxy's memory."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from sigv4_proxy.emulate.dsql.server import DsqlEmulator
from sigv4_proxy.pg import protocol as pgp
from sigv4_proxy.pgproxy.door import _MessageEdge
from sigv4_proxy.pgproxy.runner import PgProxy
from tests.pg_proxy.conftest import pg_connect, psycopg

READY_IDLE = pgp.ready_for_query("I")


def _logged_in(proxy: PgProxy) -> socket.socket:
    """A raw client through the proxy, after ReadyForQuery (plain text, no password: the proxy asks none)."""
    sock = socket.create_connection(("127.0.0.1", proxy.port()), timeout=10)
    sock.sendall(pgp.startup_message({"user": "admin", "database": "postgres"}))
    buffer = bytearray()
    while True:
        chunk = sock.recv(65536)
        assert chunk, "the proxy closed before ReadyForQuery"
        buffer += chunk
        if any(frame.type == ord("Z") for frame in pgp.iter_frames(buffer)):
            return sock


def _table(emulator: DsqlEmulator, name: str) -> None:
    with psycopg.connect(emulator.superuser_dsn, autocommit=True) as superuser:
        superuser.execute(f"DROP TABLE IF EXISTS {name}")
        superuser.execute(f"CREATE TABLE {name} (n int)")
        superuser.execute(f"GRANT ALL ON {name} TO admin")


def _count(emulator: DsqlEmulator, name: str) -> int:
    with psycopg.connect(emulator.superuser_dsn, autocommit=True) as superuser:
        row = superuser.execute(f"SELECT count(*) FROM {name}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("split", [1, 2, 3, 4, 5, 6, 7, 1000])
def test_the_message_edge_follows_lengths_across_any_split(split: int) -> None:
    stream = pgp.query("SELECT 1") + pgp.sync() + pgp.parse("", "SELECT $1", ()) + pgp.query("x" * 300)
    edge = _MessageEdge()
    boundaries = set()
    position = 0
    for frame in pgp.iter_frames(stream):
        boundaries.add(frame.end)
    for start in range(0, len(stream), split):
        chunk = stream[start : start + split]
        edge.feed(chunk)
        position += len(chunk)
        assert edge.between_messages == (position in boundaries), position
    assert edge.between_messages


def test_statements_sent_before_a_half_close_reach_the_upstream(
    proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator
) -> None:
    """PostgreSQL runs what a half-closed client sent and answers it; a TLS upstream cannot carry the half-close,
    so the proxy sends Terminate after the client's last message: every statement runs and every answer comes
    back, then EOF."""
    _table(dsql_off, "relay_half_close")
    proxy = proxy_for(dsql_off)
    sock = _logged_in(proxy)
    sock.sendall(b"".join(pgp.query(f"INSERT INTO relay_half_close VALUES ({n})") for n in range(50)))
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(10)
    answers = bytearray()
    while chunk := sock.recv(65536):  # then EOF, not a hang
        answers += chunk
    sock.close()
    assert _count(dsql_off, "relay_half_close") == 50
    tags = [bytes(answers[f.start + 5 : f.end]) for f in pgp.iter_frames(answers) if f.type == ord("C")]
    assert tags == [b"INSERT 0 1\0"] * 50
    with pg_connect(proxy) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("megabytes", [64])
def test_a_client_that_stops_reading_is_back_pressured_not_buffered(
    proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator, megabytes: int
) -> None:
    """A client that asks for a large result and reads none of it: the proxy stops reading the upstream once the
    client's socket is full, so its memory does not grow by the result's size; the client then reads it all."""
    import psutil

    proxy = proxy_for(dsql_off)
    sock = _logged_in(proxy)
    size = megabytes * 1024 * 1024
    before = psutil.Process().memory_info().rss
    sock.sendall(pgp.query(f"SELECT repeat('x', 1024) FROM generate_series(1, {size // 1024})"))
    with psycopg.connect(dsql_off.superuser_dsn, autocommit=True) as superuser:
        for _ in range(100):  # until the backend is blocked writing to the proxy (ClientWrite)
            row = superuser.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'ClientWrite' AND query LIKE 'SELECT repeat%'"
            ).fetchone()
            if row is not None and row[0] == 1:
                break
            superuser.execute("SELECT pg_sleep(0.05)")
        else:
            pytest.fail("the backend never blocked on a full socket: the proxy buffered the whole result")
    grown = psutil.Process().memory_info().rss - before
    assert grown < size / 2, f"the proxy's process grew by {grown} bytes for a {size}-byte result"
    received, tail = 0, b""
    sock.settimeout(10)
    while tail != READY_IDLE:  # the stream ends with ReadyForQuery
        chunk = sock.recv(1 << 20)
        assert chunk
        received += len(chunk)
        tail = (tail + chunk)[-len(READY_IDLE) :]
    sock.close()
    assert received > size

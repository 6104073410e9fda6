"""Sessions through `sigv4-proxy pg` once logged in: 64 concurrent clients, CancelRequest routed to the right
upstream connection, 20 MB of COPY each way byte for byte, the extended protocol (prepared statements, pipelines),
and a long run with 20-second credentials: the proxy's credentials rotate, every new connection gets a fresh token
and works, an established connection is untouched."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sigv4_proxy.credentials import StaticCredentialProvider
from sigv4_proxy.emulate.dsql.auth import Identity, generate_identity
from sigv4_proxy.emulate.dsql.server import DsqlEmulator, DsqlEmulatorConfig, start_dsql
from sigv4_proxy.pgproxy.runner import PgProxy
from sigv4_proxy.redact import mask_access_key
from sigv4_proxy.signing.model import Credentials
from tests.emulate_dsql.conftest import connect as connect_directly
from tests.pg_proxy.conftest import pg_connect
from tests.support.waiting import wait_until_sync

psycopg = pytest.importorskip("psycopg")

CLIENTS = 64
TWENTY_MB = 20 * 1024 * 1024


def _wait_until_idle(proxy: PgProxy) -> dict[str, int]:
    """The counters once every connection has been closed on the proxy's side too."""
    wait_until_sync(lambda: proxy.counters()["connections_open"] == 0, what="the proxy's connections to close")
    return proxy.counters()


# ------------------------------------------------------------------------------------------------ concurrency


def test_64_concurrent_clients(proxy: PgProxy) -> None:
    barrier = threading.Barrier(CLIENTS, timeout=60)

    def session(number: int) -> tuple[int, int]:
        with pg_connect(proxy) as conn:
            barrier.wait()  # all 64 are open at the same time
            value, pid = conn.execute("SELECT %s::int, pg_backend_pid()", (number,)).fetchone()
            return int(value), int(pid)

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(session, range(CLIENTS)))
    assert [value for value, _ in results] == list(range(CLIENTS))
    assert len({pid for _, pid in results}) == CLIENTS  # 64 distinct upstream sessions, none shared
    counters = _wait_until_idle(proxy)
    assert counters["connections_total"] == CLIENTS
    assert counters["tokens_minted"] == CLIENTS


# ----------------------------------------------------------------------------------------------------- cancel

_LEGACY_CANCEL = """
import json, sys, threading, time
import psycopg
conn = psycopg.connect(**json.loads(sys.argv[1]), autocommit=True)
threading.Timer(0.3, conn.cancel).start()
started = time.monotonic()
try:
    conn.execute("SELECT pg_sleep(30)")
    print("not canceled")
except psycopg.errors.QueryCanceled:
    print(f"canceled after {time.monotonic() - started:.2f}")
print("after:", conn.execute("SELECT 1").fetchone()[0])
"""


@pytest.mark.parametrize("rules", ["dsql", "off"])
def test_cancel_request_through_the_proxy_within_two_seconds(
    dsql: DsqlEmulator, dsql_off: DsqlEmulator, proxy_for: Callable[..., PgProxy], rules: str
) -> None:
    """libpq's PQcancel (psycopg's `cancel()`) opens a new plain connection to the proxy with the key the proxy
    handed out; the proxy must send it to the upstream connection of that session. In a child process: PQcancel
    blocks holding the GIL, and the proxy and the emulator run in this one."""
    proxy = proxy_for(dsql if rules == "dsql" else dsql_off)
    params = json.dumps({**proxy.libpq_params(), "connect_timeout": "10"})
    done = subprocess.run([sys.executable, "-c", _LEGACY_CANCEL, params], capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("canceled after "), done.stdout + done.stderr
    assert float(lines[0].split()[-1]) < 2.0
    assert lines[1] == "after: 1"  # the canceled session goes on
    counters = _wait_until_idle(proxy)
    assert counters["cancels_forwarded"] == 1
    assert counters["tokens_minted"] == 1  # the cancel connection logs nobody in


def test_cancel_safe_in_process_reaches_the_right_session(proxy: PgProxy) -> None:
    """libpq 17's non-blocking cancel (psycopg's `cancel_safe()`), with a bystander session left alone."""
    bystander_outcome: list[object] = []

    def bystander_query(bystander: Any) -> None:
        try:
            bystander_outcome.append(bystander.execute("SELECT pg_sleep(1.5), 'untouched'").fetchone()[1])
        except psycopg.Error as error:
            bystander_outcome.append(error)

    with pg_connect(proxy) as conn, pg_connect(proxy) as bystander:
        slow = threading.Thread(target=bystander_query, args=(bystander,))
        slow.start()
        timer = threading.Timer(0.3, conn.cancel_safe)
        started = time.monotonic()
        timer.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 2.0
        slow.join(10)
        assert bystander_outcome == ["untouched"]
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert _wait_until_idle(proxy)["cancels_forwarded"] == 1


# ------------------------------------------------------------------------------------------------------- COPY


def _copy_payload(size: int) -> bytes:
    """COPY text rows (id, body) of varied length with multi-byte UTF-8, ordered by id, about `size` bytes."""
    generator = random.Random(12)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 éß€漢"
    rows, total, number = [], 0, 0
    while total < size:
        body = "".join(generator.choices(alphabet, k=generator.randint(1, 4000)))
        row = f"{number}\t{body}\n".encode()
        rows.append(row)
        total += len(row)
        number += 1
    return b"".join(rows)


def test_copy_20_mb_in_and_out_byte_exact(proxy: PgProxy) -> None:
    payload = _copy_payload(TWENTY_MB)
    with pg_connect(proxy) as conn:
        conn.execute("DROP TABLE IF EXISTS proxy_copy_blob")
        conn.execute("CREATE TABLE proxy_copy_blob (id bigint PRIMARY KEY, body text)")
        with conn.cursor() as cursor:
            with cursor.copy("COPY proxy_copy_blob (id, body) FROM STDIN") as copy:
                for start in range(0, len(payload), 1 << 20):  # megabyte writes, cut mid-row
                    copy.write(payload[start : start + (1 << 20)])
            copied_out = bytearray()
            with cursor.copy("COPY (SELECT id, body FROM proxy_copy_blob ORDER BY id) TO STDOUT") as copy:
                for chunk in copy:
                    copied_out += chunk
        assert conn.execute("SELECT count(*) FROM proxy_copy_blob").fetchone() == (payload.count(b"\n"),)
        conn.execute("DROP TABLE proxy_copy_blob")
    assert len(copied_out) == len(payload)
    assert hashlib.sha256(copied_out).hexdigest() == hashlib.sha256(payload).hexdigest()
    counters = _wait_until_idle(proxy)
    assert counters["bytes_to_upstream"] > len(payload)
    assert counters["bytes_to_client"] > len(payload)


# ------------------------------------------------------------------------------------------ extended protocol


def test_extended_protocol_prepared_statements_and_pipeline(proxy: PgProxy) -> None:
    with pg_connect(proxy) as conn:
        conn.execute("DROP TABLE IF EXISTS proxy_ext_items")
        conn.execute("CREATE TABLE proxy_ext_items (id bigint PRIMARY KEY, name text)")
        for number in range(10):
            conn.execute("INSERT INTO proxy_ext_items VALUES (%s, %s)", (number, f"item {number}"), prepare=True)
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT%'")
        assert prepared.fetchone() == (1,)  # one server-side statement, executed ten times
        rows = conn.execute("SELECT name FROM proxy_ext_items WHERE id >= %s ORDER BY id", (8,)).fetchall()
        assert rows == [("item 8",), ("item 9",)]
        with conn.cursor(binary=True) as cursor:
            cursor.execute("SELECT %s::bigint * 2, %s::bytea", (21, b"\x00\xff"))
            assert cursor.fetchone() == (42, b"\x00\xff")
        with conn.pipeline(), conn.cursor() as cursor:  # many Parse/Bind/Execute before one Sync
            cursor.executemany("UPDATE proxy_ext_items SET name = %s WHERE id = %s", [(f"n{n}", n) for n in range(10)])
        names = conn.execute("SELECT string_agg(name, ',' ORDER BY id) FROM proxy_ext_items").fetchone()[0]
        assert names == ",".join(f"n{n}" for n in range(10))
        with pytest.raises(psycopg.errors.UniqueViolation):  # an error mid-extended-protocol, then recovery
            conn.execute("INSERT INTO proxy_ext_items VALUES (%s, %s)", (1, "dup"), prepare=True)
        assert conn.execute("SELECT %s::text", ("still fine",)).fetchone() == ("still fine",)
        conn.execute("DROP TABLE proxy_ext_items")


# ------------------------------------------------------------------------------------ 20-second credentials

ROTATE_EVERY = 20.0  # seconds each identity is handed out
EXPIRY_MARGIN = 5.0  # an identity expires this long after it is rotated away (as botocore refreshes ahead)
RUN_FOR = 45.0
NEW_CONNECTION_EVERY = 0.5


class _RotatingCredentials:
    """A chain of session credentials, each handed out for ROTATE_EVERY seconds and expiring EXPIRY_MARGIN later:
    a 2-hour run with 1-hour credentials, compressed. Remembers which access keys it handed out."""

    def __init__(self, count: int) -> None:
        self.started = time.monotonic()
        wall = datetime.now(timezone.utc)
        self.identities = [
            generate_identity(session=True, expires_at=wall + timedelta(seconds=ROTATE_EVERY * (n + 1) + EXPIRY_MARGIN))
            for n in range(count)
        ]
        self.handed_out: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self) -> Credentials:
        index = min(int((time.monotonic() - self.started) // ROTATE_EVERY), len(self.identities) - 1)
        identity = self.identities[index]
        with self._lock:
            self.handed_out.add(identity.access_key_id)
        return identity.credentials


@pytest.fixture
def rotating() -> _RotatingCredentials:
    return _RotatingCredentials(count=int(RUN_FOR // ROTATE_EVERY) + 1)


@pytest.fixture
def chain_emulator(dsql_off: DsqlEmulator, rotating: _RotatingCredentials) -> Iterator[DsqlEmulator]:
    """An emulator (on the session backend) that knows exactly the rotating chain of identities."""
    config = DsqlEmulatorConfig(identities=tuple(rotating.identities), postgres_url=dsql_off.superuser_dsn, rules="off")
    with start_dsql(config) as emulator:
        yield emulator


def _expired_login_refusal(emulator: DsqlEmulator, identity: Identity) -> Any:
    with pytest.raises(psycopg.OperationalError) as refused:
        connect_directly(emulator, "admin", identity)
    return refused.value


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_twenty_second_credentials_rotate_under_new_and_established_connections(
    chain_emulator: DsqlEmulator, rotating: _RotatingCredentials, proxy_for: Callable[..., PgProxy]
) -> None:
    proxy = proxy_for(chain_emulator, credentials=StaticCredentialProvider(rotating))
    established = pg_connect(proxy)
    try:
        pid = established.execute("SELECT pg_backend_pid()").fetchone()[0]
        new_connections = _connect_repeatedly(proxy, established, pid)
        # Long after the identity it logged in with expired, the first session is the same session.
        assert established.execute("SELECT pg_backend_pid(), current_user").fetchone() == (pid, "admin")
    finally:
        established.close()
    counters = _wait_until_idle(proxy)
    assert new_connections >= RUN_FOR / NEW_CONNECTION_EVERY * 0.5
    assert counters["tokens_minted"] == new_connections + 1  # one token per connection, none reused
    assert counters["connections_total"] == new_connections + 1
    assert rotating.handed_out == {identity.access_key_id for identity in rotating.identities}
    accepted_keys = {record.access_key for record in chain_emulator.records if record.verdict == "accepted"}
    assert accepted_keys == {mask_access_key(identity.access_key_id) for identity in rotating.identities}
    # The rotation mattered: the first identity no longer logs anyone in.
    first = rotating.identities[0]
    refusal = str(_expired_login_refusal(chain_emulator, first))  # libpq gives no SQLSTATE for a failed login
    assert "FATAL:  unable to accept connection, access denied" in refusal
    assert f"the session credentials of {mask_access_key(first.access_key_id)} expired at " in refusal
    assert 'HINT:  IAM authentication failed for user "admin"' in refusal


def _connect_repeatedly(proxy: PgProxy, established: Any, pid: int) -> int:
    """New connections for RUN_FOR seconds, each with a query; the established session queried in between.
    Returns how many new connections were made (every one must work)."""
    deadline = time.monotonic() + RUN_FOR
    made = 0
    pace = threading.Event()  # never set: its wait() paces the loop without a bare sleep
    while time.monotonic() < deadline:
        with pg_connect(proxy) as conn:
            assert conn.execute("SELECT current_user, %s::int", (made,)).fetchone() == ("admin", made)
        made += 1
        assert established.execute("SELECT pg_backend_pid()").fetchone() == (pid,)
        pace.wait(NEW_CONNECTION_EVERY)
    return made

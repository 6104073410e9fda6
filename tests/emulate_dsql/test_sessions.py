"""After the login: the relay. Extended protocol, COPY both ways (50 MB with `--rules off`), cancel, 64 concurrent
connections, a client that vanishes mid-query, and DSQL's concurrency answers (OC000, OC001) — all with psycopg
over the real backend."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.emulate_dsql import rawclient
from tests.emulate_dsql.conftest import APP_ROLE_ARN, Cast, connect
from tests.support.waiting import wait_until_sync

psycopg = pytest.importorskip("psycopg")

FIFTY_MB = 50 * 1024 * 1024


def test_extended_protocol_with_parameters_and_prepared_statements(dsql: Any, cast: Cast) -> None:
    with connect(dsql, "admin", cast.admin) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ext_items (id bigint PRIMARY KEY, name text)")
        conn.execute("DELETE FROM ext_items")
        for number in range(10):  # psycopg prepares a statement after it has run it 5 times
            conn.execute("INSERT INTO ext_items VALUES (%s, %s)", (number, f"item {number}"))
        rows = conn.execute("SELECT name FROM ext_items WHERE id >= %s ORDER BY id", (8,)).fetchall()
        assert rows == [("item 8",), ("item 9",)]
        with conn.cursor(binary=True) as cursor:
            cursor.execute("SELECT %s::bigint * 2", (21,))
            assert cursor.fetchone() == (42,)


def _copy_roundtrip(emulator: Any, identity: Any, size: int) -> tuple[int, int]:
    row = "x" * 1000 + "\n"
    rows = size // len(row)
    payload = row * rows
    with connect(emulator, "admin", identity) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_blob")
        conn.execute("CREATE TABLE copy_blob (body text)")
        with conn.cursor() as cursor:
            with cursor.copy("COPY copy_blob (body) FROM STDIN") as copy:
                data = payload.encode()
                for start in range(0, len(data), 1 << 20):
                    copy.write(data[start : start + (1 << 20)])
            out = io.BytesIO()
            with cursor.copy("COPY copy_blob TO STDOUT") as copy:
                for chunk in copy:
                    out.write(chunk)
        count = conn.execute("SELECT count(*) FROM copy_blob").fetchone()[0]
        conn.execute("DROP TABLE copy_blob")
    return count, len(out.getvalue())


def test_copy_50_mb_in_and_out_with_rules_off(dsql_off: Any, cast: Cast) -> None:
    count, copied_out = _copy_roundtrip(dsql_off, cast.admin, FIFTY_MB)
    assert count == FIFTY_MB // 1001
    assert copied_out == count * 1001


def test_copy_over_the_row_cap_is_refused_with_rules_dsql(dsql: Any, cast: Cast) -> None:
    with connect(dsql, "admin", cast.admin) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS copy_capped (n int)")
    with connect(dsql, "admin", cast.admin) as conn, conn.cursor() as cursor:
        with pytest.raises(psycopg.Error) as failure, cursor.copy("COPY copy_capped (n) FROM STDIN") as copy:
            copy.write("".join(f"{n}\n" for n in range(3001)))
        assert failure.value.sqlstate == "54000"
        assert str(failure.value.diag.message_primary) == "transaction row limit exceeded"
        assert conn.execute("SELECT count(*) FROM copy_capped").fetchone()[0] == 0
    with connect(dsql, "admin", cast.admin) as conn, conn.cursor() as cursor:
        with cursor.copy("COPY copy_capped (n) FROM STDIN") as copy:
            copy.write("".join(f"{n}\n" for n in range(3000)))
        assert conn.execute("SELECT count(*) FROM copy_capped").fetchone()[0] == 3000
        conn.execute("DELETE FROM copy_capped WHERE n < 2000")
        conn.execute("DELETE FROM copy_capped")


@pytest.mark.parametrize("mode", ["dsql", "off"])
def test_cancel_of_a_long_sleep_within_a_second(dsql: Any, dsql_off: Any, cast: Cast, mode: str) -> None:
    emulator = dsql if mode == "dsql" else dsql_off
    with connect(emulator, "admin", cast.admin) as conn:
        timer = threading.Timer(0.3, conn.cancel_safe)
        started = time.monotonic()
        timer.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 1.3
        assert conn.execute("SELECT 1").fetchone() == (1,)


_LEGACY_CANCEL = """
import json, sys, threading, time
import psycopg
conn = psycopg.connect(**json.loads(sys.argv[1]), autocommit=True)
threading.Timer(0.3, conn.cancel).start()
started = time.monotonic()
try:
    conn.execute("SELECT pg_sleep(30)")
except psycopg.errors.QueryCanceled:
    print(f"canceled after {time.monotonic() - started:.2f}")
"""


def test_legacy_plaintext_cancel_request_is_routed(dsql: Any, cast: Cast) -> None:
    """libpq's PQcancel (psycopg's `cancel()`) sends CancelRequest on a new, unencrypted connection; it must still
    reach the backend. In a child process: PQcancel blocks holding the GIL, and the emulator runs in this one."""
    params = json.dumps(dsql.libpq_params("admin", identity=cast.admin))
    done = subprocess.run([sys.executable, "-c", _LEGACY_CANCEL, params], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("canceled after "), done.stdout + done.stderr
    assert float(done.stdout.split()[-1]) < 1.3


def test_64_concurrent_connections(dsql: Any, cast: Cast) -> None:
    barrier = threading.Barrier(64, timeout=60)

    def session(number: int) -> int:
        with connect(dsql, "admin", cast.admin) as conn:
            barrier.wait()  # all 64 open at once
            return int(conn.execute("SELECT %s::int", (number,)).fetchone()[0])

    with ThreadPoolExecutor(64) as pool:
        assert sorted(pool.map(session, range(64))) == list(range(64))


def test_client_that_vanishes_mid_query_ends_its_backend_session(dsql: Any, cast: Cast, superuser: Any) -> None:
    marker = "vanishing_client_marker"
    conn = connect(dsql, "admin", cast.admin, application_name=marker)
    sock = socket.socket(fileno=conn.pgconn.socket)
    thread = threading.Thread(target=lambda: _swallow(conn.execute, "SELECT pg_sleep(30)"), daemon=True)
    thread.start()
    wait_until_sync(lambda: _sessions(superuser, marker, "active") == 1, what="the query to start")
    sock.shutdown(socket.SHUT_RDWR)  # the client's TCP connection is cut mid-query
    sock.detach()
    wait_until_sync(lambda: _sessions(superuser, marker) == 0, timeout=5, what="the backend session to end")
    thread.join(10)


def _swallow(call: Any, *args: Any) -> None:
    with contextlib.suppress(Exception):
        call(*args)


def _sessions(superuser: Any, application_name: str, state: str | None = None) -> int:
    sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    params: list[str] = [application_name]
    if state:
        sql += " AND state = %s"
        params.append(state)
    return int(superuser.execute(sql, params).fetchone()[0])


def test_write_write_conflict_is_oc000_and_the_first_committer_wins(dsql: Any, cast: Cast) -> None:
    with connect(dsql, "admin", cast.admin) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS occ_counter (id int PRIMARY KEY, n int)")
        conn.execute("INSERT INTO occ_counter VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET n = 0")
    first = connect(dsql, "admin", cast.admin, autocommit=False)
    second = connect(dsql, "admin", cast.admin, autocommit=False)
    try:
        first.execute("UPDATE occ_counter SET n = n + 1 WHERE id = 1")
        second.execute("SELECT n FROM occ_counter WHERE id = 1").fetchone()  # its snapshot starts here
        outcome: dict[str, Any] = {}

        def later_writer() -> None:
            try:
                second.execute("UPDATE occ_counter SET n = n + 10 WHERE id = 1")
                second.commit()
                outcome["committed"] = True
            except psycopg.Error as error:
                outcome["error"] = error

        thread = threading.Thread(target=later_writer)
        thread.start()
        first.commit()
        thread.join(15)
        error = outcome.get("error")
        assert error is not None, outcome
        assert error.sqlstate == "40001"
        assert error.diag.message_primary == "change conflicts with another transaction (OC000)"
        second.rollback()
        assert first.execute("SELECT n FROM occ_counter WHERE id = 1").fetchone() == (1,)
    finally:
        first.close()
        second.close()


def test_catalog_change_gives_other_sessions_oc001_once(dsql: Any, cast: Cast) -> None:
    bystander = connect(dsql, "admin", cast.admin)
    try:
        assert bystander.execute("SELECT 1").fetchone() == (1,)
        with connect(dsql, "admin", cast.admin) as changer:
            changer.execute("CREATE TABLE IF NOT EXISTS oc001_probe (id uuid PRIMARY KEY)")
            changer.execute("COMMENT ON TABLE oc001_probe IS 'changed'")
            assert changer.execute("SELECT 2").fetchone() == (2,)  # its own change: no OC001 for itself
        with pytest.raises(psycopg.errors.SerializationFailure) as failure:
            bystander.execute("SELECT 1")
        assert failure.value.diag.message_primary == "schema has been updated by another transaction (OC001)"
        assert bystander.execute("SELECT 1").fetchone() == (1,)  # cleared by the first retry
    finally:
        bystander.close()


def test_role_mappings_are_readable_with_sql(dsql: Any, cast: Cast, mapped_role: Any) -> None:
    role = mapped_role()
    admin = connect(dsql, "admin", cast.admin)  # opened after the DDL above: no OC001 to retry
    rows = admin.execute(
        "SELECT arn, pg_role_name, grantor_pg_role_name FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s",
        (role,),
    ).fetchall()
    assert rows == [(APP_ROLE_ARN, role, "admin")]
    admin.close()


def test_regranting_an_existing_mapping_is_an_error(dsql: Any, cast: Cast, mapped_role: Any) -> None:
    role = mapped_role()
    with connect(dsql, "admin", cast.admin) as admin, pytest.raises(psycopg.Error):
        admin.execute(f"AWS IAM GRANT {role} TO '{APP_ROLE_ARN}'")


def test_only_admin_may_grant(dsql: Any, cast: Cast, mapped_role: Any) -> None:
    role = mapped_role()
    with connect(dsql, role, cast.app) as conn, pytest.raises(psycopg.Error) as failure:
        conn.execute(f"AWS IAM GRANT {role} TO '{APP_ROLE_ARN}'")
    assert failure.value.diag.message_primary == f"permission denied to grant IAM trust with role {role}"


def test_create_index_async_returns_a_job(dsql: Any, admin: Any) -> None:
    admin.execute("CREATE TABLE IF NOT EXISTS indexed_things (id uuid PRIMARY KEY, name text)")
    row = admin.execute("CREATE INDEX ASYNC IF NOT EXISTS indexed_things_name ON indexed_things (name)").fetchone()
    job_id = row[0]
    assert len(job_id) == 26 and job_id.islower()
    assert admin.execute("SELECT sys.wait_for_job(%s)", (job_id,)).fetchone() == (True,)
    status = admin.execute("SELECT status, job_type FROM sys.jobs WHERE job_id = %s", (job_id,)).fetchone()
    assert status == ("completed", "INDEX_BUILD")
    with pytest.raises(psycopg.errors.FeatureNotSupported) as failure:
        admin.execute("CREATE INDEX plain_index ON indexed_things (name)")
    assert failure.value.diag.message_primary == "unsupported mode. please use CREATE INDEX ASYNC."


def test_server_version_is_dsqls(dsql: Any, admin: Any) -> None:
    assert admin.execute("SHOW server_version").fetchone() == ("16.15",)


def test_aborted_transaction_state_as_postgresql(dsql: Any, cast: Cast) -> None:
    with connect(dsql, "admin", cast.admin, autocommit=False) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("TRUNCATE ext_items")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_raw_startup_refusal_of_a_forbidden_parameter(dsql: Any, cast: Cast) -> None:
    outcome = rawclient.login(
        (dsql.listen_host, dsql.port),
        user="admin",
        password=dsql.token("admin", cast.admin),
        sni=dsql.host,
        extra={"options": "-c client_min_messages=warning"},
    )
    assert not outcome.authenticated
    assert outcome.error.get("S") == "FATAL"
    assert outcome.error.get("M") == 'setting configuration parameter "client_min_messages" not supported'


def test_connections_over_the_cap_get_dsqls_quota_error(dsql: Any, cast: Cast) -> None:
    """Sessions and logins still in progress both count, so stalled handshakes cannot pile up without bound."""
    from sigv4_proxy.emulate.dsql.server import DsqlEmulatorConfig, start_dsql

    config = DsqlEmulatorConfig(
        identities=cast.all(), postgres_url=dsql.superuser_dsn, cluster_id=dsql.cluster_id, max_connections=2
    )
    with start_dsql(config) as capped:
        session = connect(capped, "admin", cast.admin)
        stalled = socket.create_connection((capped.listen_host, capped.port))  # says nothing: a login in progress
        try:
            wait_until_sync(lambda: capped.counters().get("connections_total", 0) >= 2, what="the stalled socket")
            outcome = rawclient.login(
                (capped.listen_host, capped.port),
                user="admin",
                password=capped.token("admin", cast.admin),
                sni=capped.host,
                tls="none",
            )
            assert outcome.error.get("C") == "53300", outcome.error
            assert outcome.error.get("M") == "Unable to accept connection, too many open connections."
        finally:
            stalled.close()
            session.close()
        wait_until_sync(lambda: capped.counters().get("sessions_open", 0) == 0, what="the session to close")
        with connect(capped, "admin", cast.admin) as again:
            assert again.execute("SELECT 1").fetchone() == (1,)

"""Faults in a load test, end to end (each run a child process): a refused login is reported with the diagnosis
of the token that was sent, failed transactions are grouped by SQLSTATE, connections cut in the middle of a run
are opened again, and whatever happens, no secret reaches the output or the report. Also the failure text
itself (:mod:`sigv4_proxy.loadtest.client` imports no Locust: checked in this process)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.loadtest.conftest import skip_unless_runnable

skip_unless_runnable()

from sigv4_proxy.emulate.dsql.auth import Identity  # noqa: E402
from sigv4_proxy.emulate.dsql.server import DsqlEmulator  # noqa: E402
from sigv4_proxy.loadtest.client import (  # noqa: E402
    APPLICATION_NAME,
    SQLSTATE_UNKNOWN,
    DsqlFailure,
    describe_failure,
    parse_failure_text,
)
from sigv4_proxy.loadtest.results import OP_CONNECT, OP_TRANSACTION  # noqa: E402
from sigv4_proxy.loadtest.schema import create_table_statement  # noqa: E402
from tests.loadtest.conftest import (  # noqa: E402
    APP_ROLE_ARN,
    RUN_TIMEOUT,
    Cast,
    Run,
    connect,
    count_run_rows,
    target_args,
)

psycopg = pytest.importorskip("psycopg")


def _assert_no_secret(run: Run, *identities: Identity) -> None:
    texts = {"stdout": run.stdout, "stderr": run.stderr, "report": json.dumps(run.report)}
    for where, text in texts.items():
        assert "X-Amz-Signature=" not in text, where
        assert "X-Amz-Security-Token=" not in text, where
        for identity in identities:
            assert identity.secret_access_key not in text, where
            if identity.session_token:
                assert identity.session_token not in text, where
            assert identity.access_key_id not in text, where  # masked: AKIA****WXYZ


def _without_session_token(identity: Identity) -> Identity:
    return Identity(identity.access_key_id, identity.secret_access_key, identity.principal_arn)


@pytest.mark.parametrize(
    ("who", "detail", "diagnosis"),
    [
        pytest.param(
            "denied",
            "DETAIL: principal arn:aws:iam::123456789012:role/denied is in the emulator's --deny list (an IAM policy "
            "without dsql:DbConnectAdmin)",
            "the token passed every inspect check (host {host}, action DbConnectAdmin, region us-east-1, key {key}): "
            "the refusal comes from IAM or the database — check that the identity's policy allows "
            "dsql:DbConnectAdmin on this cluster",
            id="principal-without-dsql-permission",
        ),
        pytest.param(
            "session-without-token",
            "DETAIL: access key {key} is temporary: sign with its session token (X-Amz-Security-Token goes inside "
            "the signed query)",
            "error: access key {key} is a temporary (ASIA...) key, but the token has no X-Amz-Security-Token (fix: "
            "temporary credentials (roles, SSO, sessions) need their session token inside the signed query: "
            "include AWS_SESSION_TOKEN when signing)",
            id="temporary-key-without-its-session-token",
        ),
    ],
)
def test_a_refused_login_is_reported_with_the_diagnosis_of_its_token_and_fails_the_run(
    loadtest: Callable[..., Run], dsql: DsqlEmulator, cast: Cast, who: str, detail: str, diagnosis: str
) -> None:
    identity = cast.denied if who == "denied" else _without_session_token(cast.session)
    key = f"{identity.access_key_id[:4]}****{identity.access_key_id[-4:]}"
    run = loadtest(*target_args(dsql), identity=identity)

    assert run.returncode == 1, run.describe()
    lines = run.summary_lines
    refused = lines.index("  refused logins:")
    assert lines[refused + 1] == "    1 × 08006 unable to accept connection, access denied", run.describe()
    assert lines[refused + 2] == "        " + detail.format(key=key)
    diagnosis_at = lines.index("      diagnosis of the token sent:")
    assert lines[diagnosis_at + 1] == "        " + diagnosis.format(host=dsql.host, key=key)
    assert "    08006  connect          1 × unable to accept connection, access denied" in lines
    assert lines[-1] == (
        "FAILED: could not connect to create the table (08006 unable to accept connection, access denied): no user ran"
    )
    report = run.report
    assert report is not None
    assert report["ok"] is False
    assert [(failure["sqlstate"], failure["count"]) for failure in report["auth_failures"]] == [("08006", 1)]
    assert report["auth_failures"][0]["diagnosis"] == [diagnosis.format(host=dsql.host, key=key)]
    assert (report["transactions"], report["rows_committed"], report["rows_counted"]) == (0, 0, None)
    _assert_no_secret(run, identity, cast.session)


def _role_that_may_not_insert(dsql: DsqlEmulator, cast: Cast, table: str) -> str:
    """A LOGIN role mapped to the `app` identity that may create tables and read, but not insert into `table`."""
    role = f"{table}_role"
    with connect(dsql, "admin", cast.admin) as conn:
        conn.execute(create_table_statement(table))
        conn.execute(f"CREATE ROLE {role} WITH LOGIN")
        conn.execute(f"AWS IAM GRANT {role} TO '{APP_ROLE_ARN}'")
        conn.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT ON {table} TO {role}")
    return role


def test_failed_transactions_are_grouped_by_sqlstate_with_an_example(
    loadtest: Callable[..., Run], dsql: DsqlEmulator, cast: Cast, fresh_table: Callable[[str], str]
) -> None:
    table = fresh_table("denied_insert")
    role = _role_that_may_not_insert(dsql, cast, table)
    run = loadtest(*target_args(dsql), "--user", role, "--table", table, identity=cast.app)

    assert run.returncode == 1, run.describe()
    lines = run.summary_lines
    assert f"    42501  transaction     10 × permission denied for table {table}" in lines, run.describe()
    assert "  refused logins: none" in lines
    assert "  rows        expected 10, committed 0, counted in the database 0 (MISMATCH)" in lines
    assert lines[-1] == (
        "FAILED: rows missing: 0 of the 10 expected are in the database; "
        f"10 transaction failures with SQLSTATE 42501: permission denied for table {table}"
    )
    report = run.report
    assert report is not None
    assert (report["transactions"], report["transactions_failed"]) == (10, 10)
    assert report["errors"] == [
        {
            "sqlstate": "42501",
            "count": 10,
            "operation": OP_TRANSACTION,
            "example": f"permission denied for table {table}",
        }
    ]
    _assert_no_secret(run, cast.app)


# The users' sessions in the backend (the sessions that create the table and count the rows have a name of their own).
_USER_SESSIONS = "SELECT {what} FROM pg_stat_activity WHERE application_name = %s"


def _terminate_load_sessions(dsql: DsqlEmulator, at_least: int) -> int:
    """Cut the load test's sessions in the backend, once `at_least` of them are open; how many were cut."""
    deadline = time.monotonic() + RUN_TIMEOUT / 2
    with psycopg.connect(dsql.superuser_dsn, autocommit=True) as superuser:
        while time.monotonic() < deadline:
            row = superuser.execute(_USER_SESSIONS.format(what="count(*)"), (APPLICATION_NAME,)).fetchone()
            if row is not None and row[0] >= at_least:
                cut = superuser.execute(
                    _USER_SESSIONS.format(what="pg_terminate_backend(pid)") + " AND state = 'idle'", (APPLICATION_NAME,)
                ).fetchall()
                return len(cut)
            time.sleep(0.05)
    raise AssertionError(f"the load test never had {at_least} sessions open")


@pytest.mark.slow
def test_users_reconnect_after_their_connections_are_cut_and_every_committed_row_is_counted(
    start_loadtest: Callable[..., Any], dsql: DsqlEmulator, cast: Cast, fresh_table: Callable[[str], str], tmp_path: Any
) -> None:
    table = fresh_table("reconnect")
    report_path = tmp_path / "reconnect.json"
    process = start_loadtest(
        *target_args(dsql), "--users", "3", "--duration", "3s", "--rate", "30", "--table", table,
        "--report", str(report_path), identity=cast.admin,
    )  # fmt: skip
    cut = _terminate_load_sessions(dsql, at_least=3)
    stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    run = Run(process.returncode, stdout, stderr, json.loads(report_path.read_text()))
    report = run.report
    assert report is not None

    # A cut session fails the transaction that finds it gone (the error makes the run fail), nothing else; that
    # user connects again for its next transaction.
    assert run.returncode == 1, run.describe()
    failed = report["transactions_failed"]
    assert 1 <= failed <= cut, run.describe()
    connects = next(op for op in report["operations"] if op["name"] == OP_CONNECT)
    assert (connects["count"], connects["failures"]) == (3 + failed, 0), run.describe()
    assert {error["operation"] for error in report["errors"]} == {OP_TRANSACTION}
    committed = report["rows_committed"]
    assert committed == report["transactions"] - report["transactions_failed"]
    assert report["rows_counted"] == committed
    assert count_run_rows(dsql, cast.admin, table, report["run_id"]) == committed
    _assert_no_secret(run, cast.admin)


def _wait_for_load_sessions(dsql: DsqlEmulator, count: int) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT / 2
    with psycopg.connect(dsql.superuser_dsn, autocommit=True) as superuser:
        while time.monotonic() < deadline:
            row = superuser.execute(_USER_SESSIONS.format(what="count(*)"), (APPLICATION_NAME,)).fetchone()
            if row is not None and row[0] >= count:
                return
            time.sleep(0.05)
    raise AssertionError(f"the load test never had {count} sessions open")


@pytest.mark.slow
def test_a_schema_change_mid_run_is_retried_as_an_occ_conflict_and_counted(
    start_loadtest: Callable[..., Any], dsql: DsqlEmulator, cast: Cast, fresh_table: Callable[[str], str], tmp_path: Any
) -> None:
    table = fresh_table("occ")
    report_path = tmp_path / "occ.json"
    process = start_loadtest(
        *target_args(dsql), "--users", "3", "--duration", "3s", "--rate", "30", "--table", table,
        "--report", str(report_path), identity=cast.admin,
    )  # fmt: skip
    _wait_for_load_sessions(dsql, 3)
    with connect(dsql, "admin", cast.admin) as admin:
        # A committed DDL: DSQL fails every other open session's next statement once with 40001 OC001.
        admin.execute(f"CREATE TABLE {table}_other (id uuid PRIMARY KEY)")
    stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    run = Run(process.returncode, stdout, stderr, json.loads(report_path.read_text()))
    report = run.report
    assert report is not None

    assert run.returncode == 0, run.describe()  # retried by run_transaction: no error
    assert (report["occ_retries"], report["occ_gave_up"], report["transactions_failed"]) == (3, 0, 0), run.describe()
    assert "  OCC         3 conflicts retried, 0 gave up" in run.summary_lines
    assert report["rows_counted"] == report["rows_committed"] == report["transactions"]
    assert report["timeline"][-1]["occ_retries"] == 3


# -- the failure text, in this process (no Locust here) ----------------------------------------------------------


def test_a_refused_login_becomes_sqlstate_and_the_servers_words_without_libpqs_prefix(
    dsql: DsqlEmulator, cast: Cast
) -> None:
    with pytest.raises(psycopg.OperationalError) as caught:
        connect(dsql, "admin", cast.denied)
    failure = describe_failure(caught.value, connecting=True)
    assert (failure.sqlstate, failure.login_refused, failure.diagnosis) == ("08006", True, ())
    assert failure.message.splitlines() == [
        "unable to accept connection, access denied",
        "DETAIL: principal arn:aws:iam::123456789012:role/denied is in the emulator's --deny list (an IAM policy "
        "without dsql:DbConnectAdmin)",
        "HINT: User: arn:aws:iam::123456789012:role/denied is not authorized to perform: dsql:DbConnectAdmin on "
        f"resource: arn:aws:dsql:us-east-1:123456789012:cluster/{dsql.cluster_id} because no identity-based policy "
        "allows the dsql:DbConnectAdmin action",
    ]
    # What Locust keys the failure by (one line), and what a master reads back from a worker's report.
    error = DsqlFailure(failure)
    assert repr(error) == str(error) == "SQLSTATE 08006: " + " ".join(failure.message.splitlines())
    assert parse_failure_text(repr(error)) == ("08006", " ".join(failure.message.splitlines()))


def test_a_statement_error_keeps_its_sqlstate_detail_and_hint(dsql: DsqlEmulator, cast: Cast) -> None:
    with connect(dsql, "admin", cast.admin) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT 1/0")
    failure = describe_failure(caught.value, connecting=False)
    assert failure == describe_failure(caught.value, connecting=False)
    assert (failure.sqlstate, failure.message, failure.login_refused) == ("22012", "division by zero", False)

    with connect(dsql, "admin", cast.admin) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute("CREATE TABLE lt_serial_refused (id serial PRIMARY KEY)")
    failure = describe_failure(caught.value, connecting=False)
    assert (failure.sqlstate, failure.message) == ("42704", 'type "serial" does not exist')


def test_a_failure_without_sqlstate_is_told_as_such() -> None:
    failure = describe_failure(TimeoutError("timed out after 10 s"), connecting=True)
    assert (failure.sqlstate, failure.message, failure.login_refused) == (
        SQLSTATE_UNKNOWN,
        "timed out after 10 s",
        False,
    )
    assert parse_failure_text("something Locust made up") == (SQLSTATE_UNKNOWN, "something Locust made up")

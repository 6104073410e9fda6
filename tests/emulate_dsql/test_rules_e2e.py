"""DSQL's rules end to end: every case of test_rules.py's tables (one source of cases) through the running emulator
and psycopg, in both protocols, with the exact SQLSTATE, message and DETAIL a client sees.

* Refused statements: the simple Query protocol (``conn.execute(sql)``) and the extended one (``prepare=True``:
  Parse/Bind/Execute); libpq's own trace shows which messages psycopg really sent.
* Allowed neighbours run inside a rolled-back transaction and must succeed; the tables they name are made in
  ``public`` by the ``world`` fixture (straight on the backend as its superuser, so no session gets OC001 for it),
  and what they create lands in an empty schema first on the search_path.
* Transaction rules on a non-autocommit connection (and one multi-statement simple query); the rules the backend
  raises (row/size/age caps, IAM procedures, DROP ROLE) and the session's OCC answers (OC000, OC001).
* Hardening: the emulator's own schema, its triggers and the ``sys`` tables are out of a client's reach.

Other configurations (foreign keys refused, small size/age caps) are emulators attached to the same backend."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sigv4_proxy.emulate.dsql.rules import RULES, Limits, Refused, RulesConfig, analyze
from sigv4_proxy.emulate.dsql.server import DsqlEmulator, DsqlEmulatorConfig, start_dsql
from tests.emulate_dsql.conftest import APP_ROLE_ARN, Cast, connect
from tests.emulate_dsql.test_rules import RENDERED_CASES, STATEMENT_CASES, TRANSACTION_CASES

psycopg = pytest.importorskip("psycopg")
from psycopg import pq  # noqa: E402

PROTOCOLS = ("simple", "extended")
# New objects land in FRESH (empty); the tables the cases name resolve in public (where CREATE INDEX ASYNC finds them
# too, see test_create_index_async_follows_the_callers_search_path).
FRESH, ELSEWHERE = "rules_e2e_fresh", "rules_e2e_elsewhere"
SEARCH_PATH = f"-c search_path={FRESH},public"
READER, NOLOGIN, MISSING = "reader", "rules_e2e_nologin", "rules_e2e_missing"
OTHER_ARN = "arn:aws:iam::123456789012:role/rules-e2e-other"
SMALL = Limits(rows=3000, bytes=65536, age_seconds=1)

# What psycopg sends (libpq's trace): one Query; or Parse+Sync, then Bind/Describe/Execute/Sync once it parsed.
SENT_REFUSED = {"simple": ["Query"], "extended": ["Parse", "Sync"]}
SENT_ALLOWED = {"simple": ["Query"], "extended": ["Parse", "Sync", "Bind", "Describe", "Execute", "Sync"]}
# psycopg's own housekeeping, left out of the lists above: the BEGIN that opens a non-autocommit transaction, and the
# DEALLOCATE ALL it sends after a DDL command (its prepared statements may be stale).
_PSYCOPG_OWN = frozenset({("Query", '"BEGIN"'), ("Query", '"DEALLOCATE ALL"')})

_WORLD_SQL = f"""
DROP SCHEMA IF EXISTS {FRESH} CASCADE;
DROP SCHEMA IF EXISTS {ELSEWHERE} CASCADE;
CREATE SCHEMA {FRESH} AUTHORIZATION admin;
CREATE SCHEMA {ELSEWHERE} AUTHORIZATION admin;
SET ROLE admin;
DROP TABLE IF EXISTS public.t, public.p, public.occ;
CREATE TABLE public.t (
  id int, a int, b text, {", ".join(f"c{i} int" for i in range(9))},
  CONSTRAINT c CHECK (a > -1)
);
CREATE TABLE public.p (id uuid PRIMARY KEY);
CREATE TABLE public.occ (id int PRIMARY KEY, n int);
INSERT INTO public.occ VALUES (1, 0);
CREATE TABLE {ELSEWHERE}.only_here (a int);
RESET ROLE;
DROP ROLE IF EXISTS {READER};
DROP ROLE IF EXISTS {NOLOGIN};
CREATE ROLE {READER} LOGIN;
CREATE ROLE {NOLOGIN} NOLOGIN;
"""
_WORLD_TEARDOWN_SQL = f"""
DROP SCHEMA IF EXISTS {FRESH} CASCADE;
DROP SCHEMA IF EXISTS {ELSEWHERE} CASCADE;
DROP TABLE IF EXISTS public.t, public.p, public.occ;
DROP ROLE IF EXISTS {READER};
DROP ROLE IF EXISTS {NOLOGIN};
"""


# -- fixtures and helpers ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(dsql: DsqlEmulator) -> Iterator[None]:
    with psycopg.connect(dsql.superuser_dsn, autocommit=True) as superuser:
        superuser.execute(_WORLD_SQL)
    yield
    with psycopg.connect(dsql.superuser_dsn, autocommit=True) as superuser:
        superuser.execute(_WORLD_TEARDOWN_SQL)


@pytest.fixture(scope="module")
def attached(dsql: DsqlEmulator, cast: Cast) -> Iterator[Callable[..., DsqlEmulator]]:
    """attach(**config) -> an emulator with that configuration on the same backend, started on first use."""
    started: dict[tuple[tuple[str, Any], ...], DsqlEmulator] = {}
    with contextlib.ExitStack() as stack:

        def attach(**options: Any) -> DsqlEmulator:
            key = tuple(sorted(options.items()))
            if key not in started:
                config = DsqlEmulatorConfig(identities=cast.all(), postgres_url=dsql.superuser_dsn, **options)
                started[key] = stack.enter_context(start_dsql(config))
            return started[key]

        yield attach


@pytest.fixture
def superuser(dsql: DsqlEmulator) -> Iterator[Any]:
    with psycopg.connect(dsql.superuser_dsn, autocommit=True) as conn:
        yield conn


def _emulator_for(config: RulesConfig, dsql: DsqlEmulator, attached: Callable[..., DsqlEmulator]) -> DsqlEmulator:
    if config == RulesConfig():
        return dsql
    return attached(foreign_keys=config.foreign_keys, limits=config.limits, messages=config.overrides)


def _session(emulator: DsqlEmulator, cast: Cast, **libpq: Any) -> Any:
    return connect(emulator, "admin", cast.admin, options=SEARCH_PATH, **libpq)


def _execute(conn: Any, sql: str, protocol: str) -> Any:
    """The simple Query protocol (psycopg's choice without parameters) or the extended one (a prepared statement)."""
    return conn.execute(sql) if protocol == "simple" else conn.execute(sql, prepare=True)


@contextlib.contextmanager
def _traced(conn: Any) -> Iterator[list[str]]:
    """The frontend messages libpq sends inside the block (its PQtrace output, flushed by PQuntrace), without
    psycopg's own housekeeping queries."""
    sent: list[str] = []
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield sent
        finally:
            conn.pgconn.untrace()
            trace.seek(0)
            for line in trace.read().splitlines():
                direction, _length, message, *rest = line.split("\t")
                if direction == "F" and (message, "".join(rest).strip()) not in _PSYCOPG_OWN:
                    sent.append(message)


def _refusal(conn: Any, sql: str, protocol: str) -> tuple[Any, list[str]]:
    with _traced(conn) as sent, pytest.raises(psycopg.Error) as failure:
        _execute(conn, sql, protocol)
    return failure.value, sent


def _seen(error: Any) -> tuple[str | None, str | None, str | None]:
    """What a client sees of an error: SQLSTATE, message, DETAIL."""
    return error.sqlstate, error.diag.message_primary, error.diag.message_detail


def _expected(key: str, **values: str) -> tuple[str, str, str | None]:
    refused = Refused(RULES[key], values)
    return refused.sqlstate, refused.message, refused.detail


def _error_of(conn: Any, sql: str, protocol: str) -> Any:
    with pytest.raises(psycopg.Error) as failure:
        _execute(conn, sql, protocol)
    return failure.value


# -- every statement rule: the refusal in both protocols, the allowed neighbour succeeds ----------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("key", sorted(STATEMENT_CASES))
def test_statement_rule(
    key: str, protocol: str, world: None, dsql: DsqlEmulator, attached: Callable[..., DsqlEmulator], cast: Cast
) -> None:
    refused_sql, sqlstate, message, detail, allowed_sql, config = STATEMENT_CASES[key]
    with _session(_emulator_for(config, dsql, attached), cast) as conn:
        error, sent = _refusal(conn, refused_sql, protocol)
        assert _seen(error) == (sqlstate, message, detail)
        assert sent == SENT_REFUSED[protocol]
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on

        kind = analyze(allowed_sql, config).statements[0].kind
        wrapped = kind not in ("begin", "commit", "rollback")  # run in a transaction that is rolled back
        if wrapped:
            conn.execute("BEGIN")
        with _traced(conn) as sent:
            _execute(conn, allowed_sql, protocol)
        assert sent == SENT_ALLOWED[protocol]
        conn.execute("ROLLBACK")  # a WARNING only when the allowed form ended the transaction itself


# -- transaction rules --------------------------------------------------------------------------------------------


def _transaction_steps(queries: list[str], protocol: str) -> list[str]:
    """The queries as sent on a non-autocommit connection (psycopg opens the transaction itself): whole queries in
    the simple protocol, one statement each in the extended one (a prepared statement holds one)."""
    if protocol == "extended":
        queries = [statement.text for query in queries for statement in analyze(query).statements]
    return [query for query in queries if analyze(query).statements[0].kind != "begin"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("key", sorted(TRANSACTION_CASES))
def test_transaction_rule(key: str, protocol: str, world: None, dsql: DsqlEmulator, cast: Cast) -> None:
    *before, last = _transaction_steps(TRANSACTION_CASES[key], protocol)
    with _session(dsql, cast, autocommit=False) as conn:
        for query in before:
            _execute(conn, query, protocol)
        error, sent = _refusal(conn, last, protocol)
        assert _seen(error) == _expected(key)
        assert sent == (["Query"] if protocol == "simple" else ["Parse", "Sync", "Bind", "Describe", "Execute", "Sync"])
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")  # the refusal aborted the transaction, as any error does
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_multiple_ddl_in_one_autocommit_query_runs_none_of_it(world: None, dsql: DsqlEmulator, cast: Cast) -> None:
    (query,) = TRANSACTION_CASES["multiple_ddl"]
    with _session(dsql, cast) as conn:
        error, sent = _refusal(conn, query, "simple")
        assert _seen(error) == _expected("multiple_ddl")
        assert sent == ["Query"]
        assert conn.execute(f"SELECT count(*) FROM pg_tables WHERE schemaname = '{FRESH}'").fetchone() == (0,)


# -- rules the backend raises, and the session's OCC answers --------------------------------------------------------


def test_every_rendered_rule_has_an_end_to_end_test() -> None:
    covered = {"row_limit", "size_limit", "age_limit", "oc000", "oc001", "drop_mapped_role"}
    covered |= set(IAM_ERRORS)
    assert covered == set(RENDERED_CASES)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_row_limit(protocol: str, world: None, dsql: DsqlEmulator, cast: Cast) -> None:
    with _session(dsql, cast) as conn:
        error = _error_of(conn, "INSERT INTO t (id) SELECT g FROM generate_series(1, 3001) g", protocol)
        assert _seen(error) == _expected("row_limit") == ("54000", "transaction row limit exceeded", None)
        conn.execute("BEGIN")
        _execute(conn, "INSERT INTO t (id) SELECT g FROM generate_series(1, 3000) g", protocol)
        conn.execute("ROLLBACK")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_size_limit_at_commit(
    protocol: str, world: None, attached: Callable[..., DsqlEmulator], cast: Cast, superuser: Any
) -> None:
    with _session(attached(limits=SMALL), cast, autocommit=False) as conn:
        _execute(conn, "INSERT INTO t (id, b) SELECT g, repeat('x', 1000) FROM generate_series(1, 100) g", protocol)
        with pytest.raises(psycopg.Error) as failure:
            conn.commit()
        sqlstate, message, detail = _seen(failure.value)
        assert (sqlstate, message) == ("54000", "transaction size limit 0.063mb exceeded")
        assert (sqlstate, message) == _expected("size_limit", limit=SMALL.size_mb, size="0")[:2]
        match = re.fullmatch(r"Current transaction size ([0-9.]+)mb > 0\.063mb", detail or "")
        assert match is not None and float(match.group(1)) > 65536 / (1024 * 1024), detail
    assert superuser.execute("SELECT count(*) FROM public.t WHERE b IS NOT NULL").fetchone() == (0,)


def test_age_limit_at_commit(world: None, attached: Callable[..., DsqlEmulator], cast: Cast) -> None:
    with _session(attached(limits=SMALL), cast, autocommit=False) as conn:
        conn.execute("INSERT INTO t (id) VALUES (-2)")
        conn.execute("SELECT pg_sleep(1.1)")
        with pytest.raises(psycopg.Error) as failure:
            conn.commit()
        sqlstate, message, detail = _seen(failure.value)
        assert (sqlstate, message) == ("54000", "transaction age limit of 1s exceeded")
        assert (sqlstate, message) == _expected("age_limit", limit="1", age="1")[:2]
        match = re.fullmatch(r"Current transaction age (\d+)s exceeds 1s", detail or "")
        assert match is not None and int(match.group(1)) >= 1, detail


def test_oc000_for_the_later_writer(world: None, dsql: DsqlEmulator, cast: Cast) -> None:
    with _session(dsql, cast, autocommit=False) as loser, _session(dsql, cast) as winner:
        assert loser.execute("SELECT n FROM occ WHERE id = 1").fetchone() is not None  # its snapshot starts here
        winner.execute("UPDATE occ SET n = n + 1 WHERE id = 1")
        error = _error_of(loser, "UPDATE occ SET n = n + 10 WHERE id = 1", "simple")
        assert (
            _seen(error) == _expected("oc000") == ("40001", "change conflicts with another transaction (OC000)", None)
        )
        loser.rollback()


def test_oc001_once_after_another_sessions_catalog_change(world: None, dsql: DsqlEmulator, cast: Cast) -> None:
    with _session(dsql, cast) as bystander:
        bystander.execute("SELECT 1")
        for number, protocol in enumerate(PROTOCOLS):
            with _session(dsql, cast) as changer:
                changer.execute(f"COMMENT ON TABLE occ IS 'oc001 probe {number}'")
            error = _error_of(bystander, f"SELECT {number} AS probe", protocol)
            assert _seen(error) == _expected("oc001")
            assert _seen(error) == ("40001", "schema has been updated by another transaction (OC001)", None)
            assert _execute(bystander, f"SELECT {number} AS probe", protocol).fetchone() == (number,)  # cleared


# key -> (who runs it, the statement, the template's values); {role} is a freshly mapped role.
IAM_ERRORS: dict[str, tuple[str, str, dict[str, str]]] = {
    "iam_not_admin": ("mapped", "AWS IAM GRANT {role} TO '" + OTHER_ARN + "'", {"role": "{role}"}),
    "iam_role_missing": ("admin", f"AWS IAM GRANT {MISSING} TO '{OTHER_ARN}'", {"role": MISSING}),
    "iam_role_no_login": ("admin", f"AWS IAM GRANT {NOLOGIN} TO '{OTHER_ARN}'", {"role": NOLOGIN}),
    "iam_arn_invalid": ("admin", f"AWS IAM GRANT {READER} TO 'not-an-arn'", {}),
    "iam_duplicate": (
        "admin",
        "AWS IAM GRANT {role} TO '" + APP_ROLE_ARN + "'",
        {"role": "{role}", "arn": APP_ROLE_ARN},
    ),
    "iam_mapping_missing": ("admin", f"AWS IAM REVOKE {READER} FROM '{OTHER_ARN}'", {"role": READER, "arn": OTHER_ARN}),
    "drop_mapped_role": ("admin", "DROP ROLE {role}", {"role": "{role}"}),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("key", sorted(IAM_ERRORS))
def test_iam_and_role_errors_from_the_backend(
    key: str, protocol: str, world: None, dsql: DsqlEmulator, cast: Cast, mapped_role: Callable[..., str]
) -> None:
    who, template, values = IAM_ERRORS[key]
    role = mapped_role()  # committed through the emulator before any session below opens: no OC001 for them
    sql = template.format(role=role)
    user, identity = (role, cast.app) if who == "mapped" else ("admin", cast.admin)
    with connect(dsql, user, identity) as conn:
        error = _error_of(conn, sql, protocol)
        assert _seen(error) == _expected(key, **{name: value.format(role=role) for name, value in values.items()})
        assert "sigv4_emulator" not in str(error.diag.context or "")  # the emulator's own frames are not shown


# -- rewrites -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_create_index_async_tag_and_job(protocol: str, world: None, dsql: DsqlEmulator, cast: Cast) -> None:
    with _session(dsql, cast) as conn:
        conn.execute("BEGIN")
        cursor = _execute(conn, "CREATE INDEX ASYNC rules_e2e_tag ON t (a)", protocol)
        assert cursor.statusmessage == "CREATE INDEX"
        (job_id,) = cursor.fetchone()
        assert re.fullmatch(r"[a-z2-7]{26}", job_id)
        row = conn.execute("SELECT status, object_name FROM sys.jobs WHERE job_id = %s", (job_id,)).fetchone()
        assert row == ("completed", "rules_e2e_tag")
        conn.execute("ROLLBACK")


def test_create_index_async_follows_the_callers_search_path(world: None, dsql: DsqlEmulator, cast: Cast) -> None:
    with connect(dsql, "admin", cast.admin, options=f"-c search_path={ELSEWHERE}") as conn:
        conn.execute("BEGIN")
        try:
            assert conn.execute("CREATE INDEX ASYNC ON only_here (a)").statusmessage == "CREATE INDEX"
        finally:
            conn.execute("ROLLBACK")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_show_server_version(protocol: str, dsql: DsqlEmulator, cast: Cast) -> None:
    with connect(dsql, "admin", cast.admin) as conn:
        cursor = _execute(conn, "SHOW server_version", protocol)
        assert cursor.fetchall() == [("16.15",)]
        assert cursor.statusmessage == "SHOW"
        assert [column.name for column in cursor.description] == ["server_version"]


# -- hardening: the emulator's machinery is out of reach -------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT sigv4_emulator.record_job('forged', 'completed', NULL, NULL, now())",
        "CALL sigv4_emulator.iam_grant('admin', 'arn:aws:iam::123456789012:role/forged')",
        "SELECT * FROM sigv4_emulator.create_index_async('CREATE INDEX forged ON t (a)')",
        "SET search_path = sigv4_emulator, public",
        "SELECT set_config('search_path', 'sigv4_emulator', false)",
        "CREATE FUNCTION forged() RETURNS void LANGUAGE sql AS $$ SELECT sigv4_emulator.new_job_id() $$",
        "ALTER ROLE admin SET search_path = sigv4_emulator",
    ],
)
def test_the_emulator_schema_is_out_of_reach(
    sql: str, protocol: str, world: None, dsql: DsqlEmulator, cast: Cast, superuser: Any
) -> None:
    with _session(dsql, cast) as conn:
        error = _error_of(conn, sql, protocol)
        assert _seen(error) == _expected("emulator_schema", schema="sigv4_emulator")
        assert conn.execute("SHOW search_path").fetchone() == (f"{FRESH},public",)  # as the session began
    assert superuser.execute("SELECT count(*) FROM sys.jobs WHERE job_id = 'forged'").fetchone() == (0,)
    mappings = "SELECT count(*) FROM sys.iam_pg_role_mappings WHERE arn LIKE '%forged'"
    assert superuser.execute(mappings).fetchone() == (0,)
    assert superuser.execute("SELECT count(*) FROM pg_proc WHERE proname = 'forged'").fetchone() == (0,)


def test_a_search_path_through_the_emulator_schema_is_refused_at_startup(dsql: DsqlEmulator, cast: Cast) -> None:
    with pytest.raises(psycopg.OperationalError) as failure:
        connect(dsql, "admin", cast.admin, options="-c search_path=sigv4_emulator")
    assert 'schema "sigv4_emulator" does not exist' in str(failure.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("sql", "key", "values"),
    [
        (
            "SET sigv4_emulator.rules = off",
            "reserved_prefix",
            {"name": "sigv4_emulator.rules", "prefix": "sigv4_emulator"},
        ),
        (
            "CREATE FUNCTION forged() RETURNS void LANGUAGE sql SET sigv4_emulator.rules = off AS $$ SELECT 1 $$",
            "reserved_prefix",
            {"name": "sigv4_emulator.rules", "prefix": "sigv4_emulator"},
        ),
        ("DROP TRIGGER sigv4_emulator_row_cap ON t", "trigger_statement", {"statement": "DROP TRIGGER"}),
        ("DROP TRIGGER sigv4_emulator_commit_cap ON t", "trigger_statement", {"statement": "DROP TRIGGER"}),
        ("ALTER TRIGGER sigv4_emulator_row_cap ON t RENAME TO x", "trigger_statement", {"statement": "ALTER TRIGGER"}),
        ("ALTER TABLE t DISABLE TRIGGER ALL", "alter_table_trigger", {"form": "DISABLE TRIGGER ALL"}),
        ("ALTER TABLE t DISABLE TRIGGER USER", "alter_table_trigger", {"form": "DISABLE TRIGGER USER"}),
        ("ALTER TABLE t DISABLE TRIGGER sigv4_emulator_row_cap", "alter_table_trigger", {"form": "DISABLE TRIGGER"}),
        (
            "ALTER TABLE t ENABLE REPLICA TRIGGER sigv4_emulator_commit_cap",
            "alter_table_trigger",
            {"form": "ENABLE REPLICA TRIGGER"},
        ),
        (
            "CREATE FUNCTION forged() RETURNS void LANGUAGE sql AS $$ ALTER TABLE t DISABLE TRIGGER USER $$",
            "alter_table_trigger",
            {"form": "DISABLE TRIGGER USER"},
        ),
    ],
)
def test_the_caps_cannot_be_switched_off(
    sql: str,
    key: str,
    values: dict[str, str],
    protocol: str,
    world: None,
    dsql: DsqlEmulator,
    cast: Cast,
    superuser: Any,
) -> None:
    with _session(dsql, cast) as conn:
        error = _error_of(conn, sql, protocol)
        assert _seen(error) == _expected(key, **values)
    triggers = superuser.execute(
        "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'public.t'::regclass AND NOT tgisinternal "
        "ORDER BY tgname"
    ).fetchall()
    assert triggers == [("sigv4_emulator_commit_cap", "O"), ("sigv4_emulator_row_cap", "O")]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("sql", "table"),
    [
        (
            "INSERT INTO sys.jobs (job_id, status, job_type, start_time, update_time) "
            "VALUES ('forged', 'completed', 'INDEX_BUILD', now(), now())",
            "jobs",
        ),
        ("UPDATE sys.jobs SET status = 'completed'", "jobs"),
        ("DELETE FROM sys.jobs", "jobs"),
        (
            "INSERT INTO sys.iam_pg_role_mappings (arn, pg_role_oid, pg_role_name, grantor_pg_role_oid, "
            "grantor_pg_role_name) VALUES ('arn:aws:iam::123456789012:role/forged', 10, 'admin', 10, 'admin')",
            "iam_pg_role_mappings",
        ),
        ("UPDATE sys.iam_pg_role_mappings SET arn = 'arn:aws:iam::123456789012:role/forged'", "iam_pg_role_mappings"),
        ("DELETE FROM sys.iam_pg_role_mappings", "iam_pg_role_mappings"),
    ],
)
def test_sys_tables_are_read_only(sql: str, table: str, protocol: str, dsql: DsqlEmulator, cast: Cast) -> None:
    with connect(dsql, "admin", cast.admin) as conn:
        error = _error_of(conn, sql, protocol)
        assert _seen(error) == ("42501", f"permission denied for table {table}", None)

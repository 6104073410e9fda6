"""Every helper logs in to `emulate dsql` with a token of its own, as admin and as a mapped role; DSN values,
cluster ids and PrivateLink hosts reach the server as DSQL needs them; refusals carry their diagnosis; missing
credentials stop before any dial."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sigv4_proxy import dsql as helpers
from sigv4_proxy.emulate.dsql.server import DsqlEmulator
from sigv4_proxy.errors import ConfigError, CredentialsError
from sigv4_proxy.tokens import parse_token
from tests.dsql.conftest import Cast, credentials_for, credentials_of, dial

NO_CREDENTIALS = (
    "failed to load AWS credentials: no credentials found in the environment, the shared files, SSO, or an IAM role "
    "(ensure AWS credentials are configured via environment variables, ~/.aws/credentials, or IAM role)"
)


def _users(cast: Cast, mapped_role: Callable[..., str]) -> list[tuple[str, Any]]:
    """(database user, identity): admin with the admin identity, a fresh role mapped to the app identity."""
    return [("admin", cast.admin), (mapped_role(), cast.app)]


def _expires_and_host(token: str) -> tuple[int | None, str | None, str | None]:
    parsed = parse_token(token)
    return parsed.expires_in, parsed.hostname, parsed.action


# ------------------------------------------------------------------------------------------ each helper


def test_connect(dsql: DsqlEmulator, cast: Cast, mapped_role: Callable[..., str], minted: list[str]) -> None:
    for user, identity in _users(cast, mapped_role):
        with helpers.connect(dsql.host, user, credentials=credentials_for(identity), **dial(dsql)) as conn:
            assert conn.execute("SELECT current_user, current_setting('application_name')").fetchone() == (
                user,
                "sigv4-proxy/0.1.0 psycopg",
            )
    assert [_expires_and_host(token) for token in minted] == [
        (900, dsql.host, "DbConnectAdmin"),
        (900, dsql.host, "DbConnect"),
    ]


async def test_connect_async(dsql: DsqlEmulator, cast: Cast, mapped_role: Callable[..., str]) -> None:
    for user, identity in _users(cast, mapped_role):
        conn = await helpers.connect_async(dsql.host, user, credentials=credentials_for(identity), **dial(dsql))
        async with conn:
            cursor = await conn.execute("SELECT current_user")
            assert await cursor.fetchone() == (user,)


def test_dsql_connection_as_a_psycopg_pool_class(
    dsql: DsqlEmulator, cast: Cast, mapped_role: Callable[..., str]
) -> None:
    from psycopg_pool import ConnectionPool

    for user, identity in _users(cast, mapped_role):
        kwargs = {"user": user, "credentials": credentials_for(identity), **dial(dsql)}
        with (
            ConnectionPool(
                dsql.host, connection_class=helpers.DsqlConnection, kwargs=kwargs, min_size=1, max_size=2, open=True
            ) as pool,
            pool.connection() as conn,
        ):
            assert conn.execute("SELECT current_user").fetchone() == (user,)


def test_create_pool(dsql: DsqlEmulator, cast: Cast, mapped_role: Callable[..., str]) -> None:
    for user, identity in _users(cast, mapped_role):
        with helpers.create_pool(
            dsql.host, user, credentials=credentials_for(identity), max_size=2, timeout=10, **dial(dsql)
        ) as pool:
            assert (pool.min_size, pool.max_size, pool.max_lifetime, pool.timeout) == (1, 2, 3000.0, 10)
            with pool.connection() as conn:
                assert conn.execute("SELECT current_user").fetchone() == (user,)


async def test_create_async_pool(dsql: DsqlEmulator, cast: Cast, mapped_role: Callable[..., str]) -> None:
    for user, identity in _users(cast, mapped_role):
        pool = helpers.create_async_pool(dsql.host, user, credentials=credentials_for(identity), **dial(dsql))
        async with pool, pool.connection() as conn:
            cursor = await conn.execute("SELECT current_user")
            assert await cursor.fetchone() == (user,)


@pytest.mark.parametrize("sslnegotiation", ["postgres", "direct"])
async def test_asyncpg_connect(
    dsql: DsqlEmulator, cast: Cast, mapped_role: Callable[..., str], sslnegotiation: str
) -> None:
    for user, identity in _users(cast, mapped_role):
        conn = await helpers.asyncpg_connect(
            dsql.host, user, credentials=credentials_for(identity), sslnegotiation=sslnegotiation, **dial(dsql)
        )
        try:
            assert await conn.fetchval("SELECT current_user") == user
            assert await conn.fetchval("SELECT current_setting('application_name')") == "sigv4-proxy/0.1.0 asyncpg"
        finally:
            await conn.close()


async def test_asyncpg_create_pool(
    dsql: DsqlEmulator, cast: Cast, mapped_role: Callable[..., str], minted: list[str]
) -> None:
    for user, identity in _users(cast, mapped_role):
        pool = await helpers.asyncpg_create_pool(
            dsql.host, user, credentials=credentials_for(identity), min_size=2, max_size=2, **dial(dsql)
        )
        try:
            async with pool.acquire() as first, pool.acquire() as second:
                assert [await first.fetchval("SELECT current_user"), await second.fetchval("SELECT 1")] == [user, 1]
        finally:
            await pool.close()
    # One token to check the credentials, then one per physical connection (two per pool).
    assert len(minted) == 6 and len(set(minted)) >= 2


def test_create_engine(dsql: DsqlEmulator, cast: Cast, mapped_role: Callable[..., str]) -> None:
    from sqlalchemy import text

    for user, identity in _users(cast, mapped_role):
        engine = helpers.create_engine(dsql.host, user, credentials=credentials_for(identity), connect_args=dial(dsql))
        try:
            assert (engine.pool._recycle, engine.pool._pre_ping) == (3000, True)  # type: ignore[attr-defined]
            with engine.begin() as conn:
                assert conn.execute(text("SELECT current_user")).scalar() == user
        finally:
            engine.dispose()


def test_create_engine_from_a_sqlalchemy_url(dsql: DsqlEmulator, cast: Cast, minted: list[str]) -> None:
    from sqlalchemy import text

    url = (
        f"postgresql+psycopg://admin@{dsql.host}:{dsql.port}/postgres?hostaddr={dsql.listen_host}"
        f"&sslrootcert={dsql.ca_file}&expires_in=120"
    )
    engine = helpers.create_engine(url, credentials=credentials_for(cast.admin))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == "admin"
    finally:
        engine.dispose()
    assert [_expires_and_host(token) for token in minted] == [(120, dsql.host, "DbConnectAdmin")]
    with pytest.raises(ConfigError) as failure:
        helpers.create_engine(f"postgresql+asyncpg://{dsql.host}/postgres", credentials=credentials_for(cast.admin))
    assert failure.value.problems == [
        "create_engine works with postgresql+psycopg:// URLs (psycopg 3), got postgresql+asyncpg://"
    ]


# --------------------------------------------------------------------------------- DSN, cluster id, PrivateLink


def test_dsn_token_duration_secs_is_a_number(dsql: DsqlEmulator, cast: Cast, minted: list[str]) -> None:
    # The published connector keeps ?token_duration_secs=15 as the string '15' and fails; here it is 15 seconds.
    url = (
        f"postgresql://admin@{dsql.host}:{dsql.port}/postgres?hostaddr={dsql.listen_host}&sslrootcert={dsql.ca_file}"
        "&token_duration_secs=15&connect_timeout=10"
    )
    keyword_dsn = (
        f"host={dsql.host} hostaddr={dsql.listen_host} port={dsql.port} sslrootcert={dsql.ca_file} "
        "token_duration_secs=15 region=us-east-1"
    )
    for dsn in (url, keyword_dsn):
        with helpers.connect(dsn, credentials=credentials_for(cast.admin)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("admin",)
    assert [_expires_and_host(token) for token in minted] == [(15, dsql.host, "DbConnectAdmin")] * 2


def test_cluster_id_with_region(dsql: DsqlEmulator, cast: Cast, minted: list[str]) -> None:
    with helpers.connect(
        dsql.cluster_id, region=dsql.region, credentials=credentials_for(cast.admin), **dial(dsql)
    ) as c:
        assert c.execute("SELECT current_user").fetchone() == ("admin",)
    assert parse_token(minted[0]).hostname == dsql.host


def test_privatelink_private_dns_host(dsql: DsqlEmulator, cast: Cast, minted: list[str]) -> None:
    private = f"{dsql.cluster_id}.dsql-fnh4.{dsql.region}.on.aws"  # in the emulator's certificate: verify-full
    with helpers.connect(private, credentials=credentials_for(cast.admin), **dial(dsql)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("admin",)
    assert parse_token(minted[0]).hostname == private


async def test_privatelink_vpc_endpoint_host(dsql: DsqlEmulator, cast: Cast, minted: list[str]) -> None:
    vpce = f"vpce-0123456789abcdef0-abcdefgh.dsql-fnh4.{dsql.region}.vpce.amazonaws.com"
    credentials = credentials_for(cast.admin)
    with helpers.connect(vpce, cluster_id=dsql.cluster_id, credentials=credentials, **dial(dsql)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("admin",)
    pg = await helpers.asyncpg_connect(vpce, cluster_id=dsql.cluster_id, credentials=credentials, **dial(dsql))
    try:
        assert await pg.fetchval("SELECT current_user") == "admin"
    finally:
        await pg.close()
    # The token names the cluster's public host (the endpoint's name says nothing of the cluster).
    assert [parse_token(token).hostname for token in minted] == [dsql.host, dsql.host]
    records = dsql.records[-2:]
    assert [(record.verdict, record.sni) for record in records] == [("accepted", vpce), ("accepted", vpce)]


# ------------------------------------------------------------------------------------------- refusals


def test_refused_login_carries_the_diagnosis(dsql: DsqlEmulator, cast: Cast) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError) as failure:
        helpers.connect(dsql.host, credentials=credentials_for(cast.denied), **dial(dsql))
    key = cast.denied.access_key_id
    expected = (
        f"the token passed every inspect check (host {dsql.host}, action DbConnectAdmin, region {dsql.region}, key "
        f"{key[:4]}****{key[-4:]}): the refusal comes from IAM or the database — check that the identity's policy "
        "allows dsql:DbConnectAdmin on this cluster",
    )
    assert helpers.diagnosis_of(failure.value) == expected
    assert "unable to accept connection, access denied" in str(failure.value)
    if hasattr(failure.value, "__notes__"):
        assert failure.value.__notes__ == [f"diagnosis of the token sent (sigv4-proxy):\n  - {expected[0]}"]
    assert cast.denied.secret_access_key not in str(failure.value) + "".join(getattr(failure.value, "__notes__", []))
    from sqlalchemy.exc import OperationalError

    engine = helpers.create_engine(dsql.host, credentials=credentials_for(cast.denied), connect_args=dial(dsql))
    try:
        with pytest.raises(OperationalError) as wrapped:  # the driver's error is its `orig`
            engine.connect()
    finally:
        engine.dispose()
    assert helpers.diagnosis_of(wrapped.value) == expected


async def test_refused_asyncpg_login_carries_the_diagnosis(dsql: DsqlEmulator, cast: Cast) -> None:
    import asyncpg

    with pytest.raises(asyncpg.PostgresError) as failure:
        await helpers.asyncpg_connect(dsql.host, "nobody", credentials=credentials_for(cast.app), **dial(dsql))
    assert failure.value.sqlstate in {"28000", "08006"}
    diagnosis = helpers.diagnosis_of(failure.value)
    assert len(diagnosis) == 1 and diagnosis[0].endswith(
        "check that the identity's policy allows dsql:DbConnect on this cluster, and that role 'nobody' exists with "
        "LOGIN and is mapped to the identity (AWS IAM GRANT)"
    )


def test_diagnosis_of_an_unrelated_error_is_empty() -> None:
    assert helpers.diagnosis_of(RuntimeError("boom")) == ()


# --------------------------------------------------------------------------------- missing credentials


@pytest.mark.usefixtures("no_shared_providers")
async def test_missing_credentials_stop_every_helper_before_any_dial(dsql: DsqlEmulator) -> None:
    before = len(dsql.records)
    attempts: list[Callable[[], Any]] = [
        lambda: helpers.connect(dsql.host, **dial(dsql)),
        lambda: helpers.create_pool(dsql.host, **dial(dsql)),
        lambda: helpers.create_engine(dsql.host, connect_args=dial(dsql)),
    ]
    for attempt in attempts:
        with pytest.raises(CredentialsError) as failure:
            attempt()
        assert str(failure.value) == NO_CREDENTIALS
    for coroutine in (
        lambda: helpers.connect_async(dsql.host, **dial(dsql)),
        lambda: helpers.asyncpg_connect(dsql.host, **dial(dsql)),
        lambda: helpers.asyncpg_create_pool(dsql.host, **dial(dsql)),
    ):
        with pytest.raises(CredentialsError) as failure:
            await coroutine()
        assert str(failure.value) == NO_CREDENTIALS
    assert len(dsql.records) == before


def test_a_fresh_token_the_server_calls_expired_blames_the_clock(cast: Cast) -> None:
    from sigv4_proxy.dsql._tokens import attach_diagnosis
    from sigv4_proxy.tokens import dsql_token

    token = dsql_token(
        "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", admin=True, credentials=credentials_of(cast.admin)
    )
    refusal = RuntimeError("FATAL:  unable to accept connection, access denied")
    refusal.hint = "Signature expired: 20250115T120000Z is now earlier than 20250115T121600Z"  # type: ignore[attr-defined]
    attach_diagnosis(refusal, token, "admin")
    assert helpers.diagnosis_of(refusal) == (
        "the upstream says the token's time is wrong although it was signed just now: this machine's clock is off "
        "(compare `date -u` with a time server; enable NTP, e.g. `timedatectl set-ntp true`)",
    )

"""A token lives ``expires_in`` seconds but a pool lives longer: every new physical connection must sign its own.
Pools of each driver log in, their tokens expire (2 s), the old token is refused by the server, and the pools'
new connections still log in."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sigv4_proxy import dsql as helpers
from sigv4_proxy.emulate.dsql.server import DsqlEmulator
from tests.dsql.conftest import Cast, credentials_for, dial

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("asyncpg")
pytest.importorskip("sqlalchemy")

LIFETIME = 2
PAST_LIFETIME = LIFETIME + 1.5  # the emulator checks expiry to the second: comfortably past it


def _backend_pid(conn: Any) -> int:
    return int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])


@pytest.mark.slow
async def test_pools_reconnect_with_fresh_tokens_after_the_old_ones_expired(
    dsql: DsqlEmulator, cast: Cast, minted: list[str]
) -> None:
    from sqlalchemy import text

    credentials = credentials_for(cast.admin)
    common: dict[str, Any] = {"credentials": credentials, "expires_in": LIFETIME}
    pool = helpers.create_pool(dsql.host, max_size=1, **common, **dial(dsql))
    pg_pool = await helpers.asyncpg_create_pool(dsql.host, max_size=1, **common, **dial(dsql))
    # pool_recycle=1: the engine replaces a connection older than a second when it is next checked out.
    engine = helpers.create_engine(dsql.host, pool_recycle=1, connect_args=dial(dsql), **common)
    try:
        with pool.connection() as conn:
            first_pid = _backend_pid(conn)
        async with pg_pool.acquire() as conn:
            first_pg_pid = await conn.fetchval("SELECT pg_backend_pid()")
        with engine.connect() as conn:
            first_engine_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        old_token = minted[0]
        tokens_before = len(minted)

        await asyncio.sleep(PAST_LIFETIME)  # time itself is under test: every token above has expired

        # The server refuses an expired token: a pool that reused one would fail here.
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(**dsql.libpq_params("admin", password=old_token), connect_timeout=10)
        assert "Signature expired" in str(refused.value)

        pool.drain()  # psycopg_pool: replace every connection
        with pool.connection() as conn:
            assert _backend_pid(conn) != first_pid
            assert conn.execute("SELECT current_user").fetchone() == ("admin",)
        await pg_pool.expire_connections()  # asyncpg: replace each connection when next acquired
        async with pg_pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") != first_pg_pid
            assert await conn.fetchval("SELECT current_user") == "admin"
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != first_engine_pid
            assert conn.execute(text("SELECT current_user")).scalar() == "admin"
        assert len(minted) == tokens_before + 3  # one new token per new connection
    finally:
        pool.close()
        await pg_pool.close()
        engine.dispose()

"""run_transaction against real OCC conflicts on `emulate dsql`: a transaction reads a row, another session
updates and commits it, the first one's update then fails with 40001 OC000 (the later writer loses, as on DSQL).
It is retried and succeeds; with a conflict on every attempt it gives up after its retries; a unique violation is
never retried."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sigv4_proxy import dsql as helpers
from sigv4_proxy.emulate.dsql.server import DsqlEmulator
from tests.dsql.conftest import Cast, connect, credentials_for, dial

psycopg = pytest.importorskip("psycopg")

TABLE = "dsql_helpers_occ"
OC000 = ("40001", "change conflicts with another transaction (OC000)")
GAVE_UP_NOTE = "run_transaction gave up after 3 attempts, each an OCC conflict"
_rows = itertools.count(1)


@pytest.fixture(scope="module")
def occ_table(dsql: DsqlEmulator, cast: Cast) -> str:
    with connect(dsql, "admin", cast.admin) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id int PRIMARY KEY, n int NOT NULL)")
    return TABLE


@pytest.fixture
def row(dsql: DsqlEmulator, cast: Cast, occ_table: str) -> int:
    """A fresh row (n = 0) for this test."""
    number = next(_rows)
    with connect(dsql, "admin", cast.admin) as conn:
        conn.execute(f"INSERT INTO {TABLE} VALUES (%s, 0) ON CONFLICT (id) DO UPDATE SET n = 0", (number,))
    return number


@pytest.fixture
def other(dsql: DsqlEmulator, cast: Cast) -> Iterator[Any]:
    """The session whose committed update makes the transaction under test lose."""
    with connect(dsql, "admin", cast.admin) as conn:
        yield conn


def _value(dsql: DsqlEmulator, cast: Cast, row: int) -> int:
    with connect(dsql, "admin", cast.admin) as conn:
        return int(conn.execute(f"SELECT n FROM {TABLE} WHERE id = %s", (row,)).fetchone()[0])


def _add_ten(other: Any, row: int, attempts: list[int], conflicting: Callable[[int], bool]) -> Callable[[Any], int]:
    """fn for psycopg: snapshot, then (on a conflicting attempt) the other session commits first, then our update."""

    def fn(conn: Any) -> int:
        attempts.append(len(attempts) + 1)
        conn.execute(f"SELECT n FROM {TABLE} WHERE id = %s", (row,)).fetchone()
        if conflicting(len(attempts)):
            other.execute(f"UPDATE {TABLE} SET n = n + 1 WHERE id = %s", (row,))
        conn.execute(f"UPDATE {TABLE} SET n = n + 10 WHERE id = %s", (row,))
        return len(attempts)

    return fn


def _sqlstate_and_message(error: Any) -> tuple[str, str]:
    return error.sqlstate, error.diag.message_primary


def _first_only(attempt: int) -> bool:
    return attempt == 1


def _always(attempt: int) -> bool:
    return True


# ------------------------------------------------------------------------------------------------ psycopg


def test_a_real_conflict_is_retried_on_a_connection(dsql: DsqlEmulator, cast: Cast, row: int, other: Any) -> None:
    stats, sleeps, attempts = helpers.RetryStats(), [], []
    with helpers.connect(dsql.host, credentials=credentials_for(cast.admin), autocommit=True, **dial(dsql)) as conn:
        result = helpers.run_transaction(
            conn, _add_ten(other, row, attempts, _first_only), stats=stats, sleep=sleeps.append, random=lambda: 0.5
        )
    assert (result, attempts, sleeps) == (2, [1, 2], [0.005])
    assert (stats.transactions, stats.conflicts, stats.gave_up) == (1, 1, 0)
    assert _value(dsql, cast, row) == 11  # the other session's +1, then ours


def test_a_real_conflict_is_retried_on_a_pool(dsql: DsqlEmulator, cast: Cast, row: int, other: Any) -> None:
    stats, attempts = helpers.RetryStats(), []
    with helpers.create_pool(dsql.host, credentials=credentials_for(cast.admin), max_size=1, **dial(dsql)) as pool:
        result = helpers.run_transaction(
            pool, _add_ten(other, row, attempts, _first_only), stats=stats, sleep=lambda _: None
        )
        with pool.connection() as conn:  # left idle, and usable
            assert conn.execute(f"SELECT n FROM {TABLE} WHERE id = %s", (row,)).fetchone() == (11,)
    assert (result, stats.transactions, stats.conflicts) == (2, 1, 1)


def test_gives_up_after_the_retries_with_the_last_conflict(
    dsql: DsqlEmulator, cast: Cast, row: int, other: Any
) -> None:
    stats, sleeps, attempts = helpers.RetryStats(), [], []
    with helpers.connect(dsql.host, credentials=credentials_for(cast.admin), autocommit=True, **dial(dsql)) as conn:
        with pytest.raises(psycopg.Error) as failure:
            helpers.run_transaction(
                conn,
                _add_ten(other, row, attempts, _always),
                retries=2,
                stats=stats,
                sleep=sleeps.append,
                random=lambda: 1.0,
            )
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # rolled back
    assert _sqlstate_and_message(failure.value) == OC000
    assert (attempts, sleeps) == ([1, 2, 3], [0.01, 0.02])
    assert (stats.transactions, stats.conflicts, stats.gave_up) == (0, 2, 1)
    if hasattr(failure.value, "__notes__"):
        assert failure.value.__notes__ == [GAVE_UP_NOTE]
    assert _value(dsql, cast, row) == 3  # only the other session's three updates


def test_a_unique_violation_is_raised_at_once(dsql: DsqlEmulator, cast: Cast, row: int) -> None:
    stats, sleeps, attempts = helpers.RetryStats(), [], []

    def insert_twice(conn: Any) -> None:
        attempts.append(1)
        conn.execute(f"INSERT INTO {TABLE} VALUES (%s, 5)", (row,))

    credentials = credentials_for(cast.admin)
    with (
        helpers.connect(dsql.host, credentials=credentials, autocommit=True, **dial(dsql)) as conn,
        pytest.raises(psycopg.errors.UniqueViolation) as failure,
    ):
        helpers.run_transaction(conn, insert_twice, stats=stats, sleep=sleeps.append)
    assert failure.value.sqlstate == "23505"
    assert (attempts, sleeps, stats.transactions, stats.conflicts, stats.gave_up) == ([1], [], 0, 0, 0)


def test_a_connection_inside_a_transaction_is_refused(dsql: DsqlEmulator, cast: Cast) -> None:
    with helpers.connect(dsql.host, credentials=credentials_for(cast.admin), **dial(dsql)) as conn:
        conn.execute("SELECT 1")  # not autocommit: a transaction is now open
        with pytest.raises(ValueError) as failure:
            helpers.run_transaction(conn, lambda c: None)
    assert str(failure.value) == (
        "run_transaction needs a connection with no transaction open (DSQL has no savepoints): commit or roll back "
        "first, or connect with autocommit=True"
    )


def test_sqlalchemy_engine_retries_a_real_conflict(dsql: DsqlEmulator, cast: Cast, row: int, other: Any) -> None:
    from sqlalchemy import text

    stats, attempts = helpers.RetryStats(), []

    def add_ten(conn: Any) -> None:
        attempts.append(1)
        conn.execute(text(f"SELECT n FROM {TABLE} WHERE id = :row"), {"row": row}).one()
        if len(attempts) == 1:
            other.execute(f"UPDATE {TABLE} SET n = n + 1 WHERE id = %s", (row,))
        conn.execute(text(f"UPDATE {TABLE} SET n = n + 10 WHERE id = :row"), {"row": row})

    engine = helpers.create_engine(dsql.host, credentials=credentials_for(cast.admin), connect_args=dial(dsql))
    try:
        helpers.run_transaction(engine, add_ten, stats=stats, sleep=lambda _: None)
        with engine.connect() as conn:
            helpers.run_transaction(conn, lambda c: c.execute(text("SELECT 1")).scalar(), stats=stats)
    finally:
        engine.dispose()
    assert (len(attempts), stats.transactions, stats.conflicts) == (2, 2, 1)
    assert _value(dsql, cast, row) == 11


# -------------------------------------------------------------------------------------------------- async


async def test_psycopg_async_retries_then_gives_up(dsql: DsqlEmulator, cast: Cast, row: int, other: Any) -> None:
    stats, sleeps, attempts = helpers.RetryStats(), [], []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def add_ten(conflicting: Callable[[int], bool]) -> Callable[[Any], Any]:
        async def fn(conn: Any) -> None:
            attempts.append(1)
            await (await conn.execute(f"SELECT n FROM {TABLE} WHERE id = %s", (row,))).fetchone()
            if conflicting(len(attempts)):
                other.execute(f"UPDATE {TABLE} SET n = n + 1 WHERE id = %s", (row,))
            await conn.execute(f"UPDATE {TABLE} SET n = n + 10 WHERE id = %s", (row,))

        return fn

    conn = await helpers.connect_async(
        dsql.host, credentials=credentials_for(cast.admin), autocommit=True, **dial(dsql)
    )
    async with conn:
        await helpers.run_transaction_async(conn, add_ten(_first_only), stats=stats, sleep=record_sleep)
        assert (len(attempts), stats.transactions, stats.conflicts) == (2, 1, 1)
        attempts.clear()
        with pytest.raises(psycopg.Error) as failure:
            await helpers.run_transaction_async(
                conn, add_ten(_always), retries=2, stats=stats, sleep=record_sleep, random=lambda: 1.0
            )
    assert _sqlstate_and_message(failure.value) == OC000
    assert (len(attempts), sleeps[1:], stats.transactions, stats.conflicts, stats.gave_up) == (
        3,
        [0.01, 0.02],
        1,
        3,
        1,
    )
    assert _value(dsql, cast, row) == 11 + 3


async def test_psycopg_async_pool_retries(dsql: DsqlEmulator, cast: Cast, row: int, other: Any) -> None:
    stats = helpers.RetryStats()
    attempts: list[int] = []

    async def add_ten(conn: Any) -> None:
        attempts.append(1)
        await (await conn.execute(f"SELECT n FROM {TABLE} WHERE id = %s", (row,))).fetchone()
        if len(attempts) == 1:
            other.execute(f"UPDATE {TABLE} SET n = n + 1 WHERE id = %s", (row,))
        await conn.execute(f"UPDATE {TABLE} SET n = n + 10 WHERE id = %s", (row,))

    async def no_sleep(seconds: float) -> None:
        return None

    async with helpers.create_async_pool(dsql.host, credentials=credentials_for(cast.admin), **dial(dsql)) as pool:
        await helpers.run_transaction_async(pool, add_ten, stats=stats, sleep=no_sleep)
    assert (len(attempts), stats.transactions, stats.conflicts) == (2, 1, 1)
    assert _value(dsql, cast, row) == 11


async def test_asyncpg_retries_gives_up_and_never_retries_a_unique_violation(
    dsql: DsqlEmulator, cast: Cast, row: int, other: Any
) -> None:
    import asyncpg

    stats, attempts = helpers.RetryStats(), []

    async def no_sleep(seconds: float) -> None:
        return None

    def add_ten(conflicting: Callable[[int], bool]) -> Callable[[Any], Any]:
        async def fn(conn: Any) -> None:
            attempts.append(1)
            await conn.fetchval(f"SELECT n FROM {TABLE} WHERE id = $1", row)
            if conflicting(len(attempts)):
                other.execute(f"UPDATE {TABLE} SET n = n + 1 WHERE id = %s", (row,))
            await conn.execute(f"UPDATE {TABLE} SET n = n + 10 WHERE id = $1", row)

        return fn

    async def insert_twice(conn: Any) -> None:
        attempts.append(1)
        await conn.execute(f"INSERT INTO {TABLE} VALUES ($1, 5)", row)

    credentials = credentials_for(cast.admin)
    pool = await helpers.asyncpg_create_pool(dsql.host, credentials=credentials, max_size=2, **dial(dsql))
    conn = await helpers.asyncpg_connect(dsql.host, credentials=credentials, **dial(dsql))
    try:
        await helpers.run_transaction_async(pool, add_ten(_first_only), stats=stats, sleep=no_sleep)
        assert (len(attempts), stats.transactions, stats.conflicts) == (2, 1, 1)
        attempts.clear()
        with pytest.raises(asyncpg.SerializationError) as failure:
            await helpers.run_transaction_async(conn, add_ten(_always), retries=2, stats=stats, sleep=no_sleep)
        assert (failure.value.sqlstate, str(failure.value)) == OC000
        assert (len(attempts), stats.conflicts, stats.gave_up) == (3, 3, 1)
        attempts.clear()
        with pytest.raises(asyncpg.UniqueViolationError):
            await helpers.run_transaction_async(conn, insert_twice, stats=stats, sleep=no_sleep)
        assert (len(attempts), stats.transactions, stats.conflicts, stats.gave_up) == (1, 1, 3, 1)
        assert await conn.fetchval("SELECT 1") == 1  # the connection is usable after each failure
    finally:
        await conn.close()
        await pool.close()
    assert _value(dsql, cast, row) == 11 + 3

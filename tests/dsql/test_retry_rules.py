"""The pure parts of OCC retries: the backoff's delays, what counts as a conflict, the counters, argument checks."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sigv4_proxy.dsql import Backoff, RetryStats, is_occ_conflict, run_transaction, run_transaction_async


class _DriverError(Exception):
    """A driver's error as psycopg and asyncpg shape it: the SQLSTATE as `sqlstate`, the message as the text."""

    def __init__(self, sqlstate: str | None, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class _Wrapped(Exception):
    """SQLAlchemy's DBAPIError: the driver's error as `orig`."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__(f"({type(orig).__name__}) {orig}")
        self.orig = orig


def test_backoff_ceilings_grow_then_cap() -> None:
    backoff = Backoff()
    assert [backoff.ceiling(n) for n in range(9)] == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0]
    assert Backoff(first=0.5, multiplier=3.0, cap=10.0).ceiling(2) == 4.5
    assert backoff.ceiling(100_000) == 1.0  # no OverflowError


def test_backoff_delay_is_the_jitter_times_the_ceiling() -> None:
    backoff = Backoff(first=0.1, multiplier=2.0, cap=0.3)
    assert [backoff.delay(n, lambda: 0.5) for n in range(3)] == [0.05, 0.1, 0.15]
    assert backoff.delay(0, lambda: 0.0) == 0.0
    assert all(0.0 <= backoff.delay(1) <= 0.2 for _ in range(200))


def test_backoff_refuses_shrinking_or_negative_delays() -> None:
    with pytest.raises(ValueError) as failure:
        Backoff(multiplier=0.5)
    assert str(failure.value) == "Backoff needs first >= 0, cap >= 0 and multiplier >= 1, got first=0.01, " + (
        "multiplier=0.5, cap=1.0"
    )


@pytest.mark.parametrize(
    ("error", "conflict"),
    [
        (_DriverError("40001", "change conflicts with another transaction (OC000)"), True),
        (_DriverError("40001", "schema has been updated by another transaction (OC001)"), True),
        (_DriverError("40001", "change conflicts with another transaction, please retry: (OC000)"), True),
        (_Wrapped(_DriverError("40001", "change conflicts with another transaction (OC000)")), True),
        (_DriverError("40001", "could not serialize access due to concurrent update"), False),
        (_DriverError("23505", 'duplicate key value violates unique constraint "t_pkey" (OC000)'), False),
        (_DriverError(None, "change conflicts with another transaction (OC000)"), False),
        (_DriverError("40001", "see OC0001 in the manual"), False),
        (RuntimeError("40001 OC000"), False),
    ],
    ids=["oc000", "oc001", "2025-wording", "sqlalchemy-orig", "plain-40001", "other-sqlstate", "no-sqlstate",
         "longer-code", "no-driver-error"],
)  # fmt: skip
def test_what_is_an_occ_conflict(error: BaseException, conflict: bool) -> None:
    assert is_occ_conflict(error) is conflict


def test_a_conflict_found_through_an_explicit_cause() -> None:
    try:
        try:
            raise _DriverError("40001", "change conflicts with another transaction (OC000)")
        except _DriverError as inner:
            raise ValueError("while saving") from inner
    except ValueError as outer:
        assert is_occ_conflict(outer)


def test_retry_stats_count_from_many_threads() -> None:
    stats = RetryStats()

    def work() -> None:
        for _ in range(1000):
            stats.count_commit()
            stats.count_conflict()
        stats.count_give_up()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (stats.transactions, stats.conflicts, stats.gave_up) == (8000, 8000, 8)
    assert repr(stats) == "RetryStats(transactions=8000, conflicts=8000, gave_up=8)"


def test_run_transaction_refuses_what_it_cannot_run() -> None:
    with pytest.raises(TypeError) as failure:
        run_transaction(object(), lambda conn: None)
    assert str(failure.value) == (
        "run_transaction needs a psycopg Connection or ConnectionPool, or a SQLAlchemy Engine, Connection or "
        "Session, got object"
    )


async def test_run_transaction_async_refuses_what_it_cannot_run() -> None:
    async def nothing(conn: Any) -> None:
        return None

    with pytest.raises(TypeError) as failure:
        await run_transaction_async("postgresql://", nothing)
    assert str(failure.value) == (
        "run_transaction_async needs a psycopg AsyncConnection or AsyncConnectionPool, or an asyncpg Connection or "
        "Pool, got str"
    )


@pytest.mark.parametrize("retries", [-1, 1.5, True])
def test_retries_must_be_a_whole_number(retries: Any) -> None:
    with pytest.raises(ValueError) as failure:
        run_transaction(object(), lambda conn: None, retries=retries)
    assert str(failure.value) == f"retries must be a whole number >= 0, got: {retries!r}"

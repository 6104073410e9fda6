"""Aurora DSQL's optimistic concurrency: run a transaction, retry it on an OCC conflict, count what happened.

DSQL takes no locks: a transaction that conflicts with one committed before it fails with SQLSTATE ``40001`` and
``OC000`` (a row changed) or ``OC001`` (the schema changed) in its message, and the fix is to run it again
(dsql-behaviour.md §4.3). Nothing else is retried: a unique violation, a refused statement, a lost connection
are the caller's to see at once.

No driver is imported here: a connection or pool is recognised by its class only when its driver's module is
already loaded (an object of a driver that is not imported cannot exist).
"""

from __future__ import annotations

import asyncio
import random as _random
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

OCC_SQLSTATE = "40001"
_OCC_CODE = re.compile(r"\bOC00[01]\b")
_MAX_CAUSE_DEPTH = 8  # exception chains are short; the bound only guards against a cycle

SUPPORTED_SYNC = "a psycopg Connection or ConnectionPool, or a SQLAlchemy Engine, Connection or Session"
SUPPORTED_ASYNC = "a psycopg AsyncConnection or AsyncConnectionPool, or an asyncpg Connection or Pool"


@dataclass(frozen=True)
class Backoff:
    """Jittered exponential backoff ("full jitter"): the delay before retry ``n`` (0-based) is drawn uniformly
    from ``[0, min(cap, first * multiplier**n)]``, so conflicting clients spread out instead of colliding again."""

    first: float = 0.01
    multiplier: float = 2.0
    cap: float = 1.0

    def __post_init__(self) -> None:
        if self.first < 0 or self.cap < 0 or self.multiplier < 1:
            raise ValueError(
                f"Backoff needs first >= 0, cap >= 0 and multiplier >= 1, got first={self.first}, "
                f"multiplier={self.multiplier}, cap={self.cap}"
            )

    def ceiling(self, retry: int) -> float:
        """The longest delay before retry ``retry`` (0-based)."""
        try:
            grown = self.first * self.multiplier**retry
        except OverflowError:  # a huge retry number: the cap has long been reached
            return self.cap
        return min(self.cap, grown)

    def delay(self, retry: int, random: Callable[[], float] | None = None) -> float:
        """A delay for retry ``retry``: ``random()`` (in [0, 1), default :func:`random.random`) times the ceiling."""
        draw = random if random is not None else _random.random
        return draw() * self.ceiling(retry)


class RetryStats:
    """Counters of :func:`run_transaction` calls; thread-safe, so one object may be shared by many callers.

    * ``transactions``: transactions committed;
    * ``conflicts``: OCC conflicts that were retried;
    * ``gave_up``: calls that raised an OCC conflict after their last retry.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.transactions = 0
        self.conflicts = 0
        self.gave_up = 0

    def count_commit(self) -> None:
        with self._lock:
            self.transactions += 1

    def count_conflict(self) -> None:
        with self._lock:
            self.conflicts += 1

    def count_give_up(self) -> None:
        with self._lock:
            self.gave_up += 1

    def __repr__(self) -> str:
        return f"RetryStats(transactions={self.transactions}, conflicts={self.conflicts}, gave_up={self.gave_up})"


# ------------------------------------------------------------------------------------------ classification


def is_occ_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is DSQL's OCC conflict: SQLSTATE 40001 with OC000 or OC001 in the message. Reads psycopg
    and asyncpg errors, and SQLAlchemy's wrappers (``DBAPIError.orig``)."""
    return any(
        _sqlstate(candidate) == OCC_SQLSTATE and _OCC_CODE.search(_message(candidate)) is not None
        for candidate in _error_chain(exc)
    )


def _error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the driver error a wrapper carries (SQLAlchemy's ``orig``) and the explicit causes."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending and len(seen) < _MAX_CAUSE_DEPTH:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (getattr(current, "orig", None), current.__cause__):
            if isinstance(linked, BaseException):
                pending.append(linked)


def _sqlstate(exc: BaseException) -> str | None:
    # psycopg and asyncpg call it `sqlstate`; psycopg2 `pgcode`.
    for attribute in ("sqlstate", "pgcode"):
        value = getattr(exc, attribute, None)
        if isinstance(value, str):
            return value
    return None


def _message(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return " ".join(part for part in (str(exc), primary if isinstance(primary, str) else "") if part)


# ------------------------------------------------------------------------------------------- sync runner


def run_transaction(
    conn_or_pool: Any,
    fn: Callable[[Any], T],
    *,
    retries: int = 3,
    backoff: Backoff | None = None,
    stats: RetryStats | None = None,
    sleep: Callable[[float], None] | None = None,
    random: Callable[[], float] | None = None,
) -> T:
    """Run ``fn(conn)`` inside one transaction and return its result; on an OCC conflict, roll back, wait a
    jittered backoff and run it again, at most ``retries`` times; then raise the last conflict as it is (a note
    says how many attempts were made). Any other error is raised at once.

    ``conn_or_pool``: a psycopg ``Connection`` (no transaction open: DSQL has no savepoints) or
    ``ConnectionPool`` (a connection per attempt), or a SQLAlchemy ``Engine``, ``Connection`` or ``Session``.
    ``fn`` may run more than once: it must not have side effects outside the database it cannot repeat.
    ``sleep`` and ``random`` default to :func:`time.sleep` and :func:`random.random`, looked up at each call
    (so a gevent-patched ``time.sleep`` is the one used).
    """
    _check_retries(retries)
    transaction = _sync_transaction(conn_or_pool)
    chosen_backoff = backoff or Backoff()
    retry = 0
    while True:
        try:
            with transaction() as conn:
                result = fn(conn)
        except Exception as exc:
            if not is_occ_conflict(exc):
                raise
            if retry >= retries:
                _give_up(exc, retry + 1, stats)
                raise
            if stats is not None:
                stats.count_conflict()
            (sleep or time.sleep)(chosen_backoff.delay(retry, random))
            retry += 1
            continue
        if stats is not None:
            stats.count_commit()
        return result


def _sync_transaction(target: Any) -> Callable[[], AbstractContextManager[Any]]:
    """A context manager factory: each call opens one transaction (and takes a connection when ``target`` is a
    pool or an engine) and yields what ``fn`` is given."""
    if _is_instance(target, "psycopg", "Connection"):
        return lambda: _psycopg_transaction(target)
    if _is_instance(target, "psycopg_pool", "ConnectionPool"):
        return lambda: _psycopg_pool_transaction(target)
    if _is_instance(target, "sqlalchemy.engine", "Engine"):
        return lambda: target.begin()
    if _is_instance(target, "sqlalchemy.engine", "Connection"):
        return lambda: _sqlalchemy_transaction(target)
    if _is_instance(target, "sqlalchemy.orm", "Session"):
        return lambda: _sqlalchemy_transaction(target)
    raise TypeError(f"run_transaction needs {SUPPORTED_SYNC}, got {type(target).__name__}")


@contextmanager
def _psycopg_transaction(conn: Any) -> Iterator[Any]:
    _check_idle(conn)
    with conn.transaction():
        yield conn


@contextmanager
def _psycopg_pool_transaction(pool: Any) -> Iterator[Any]:
    with pool.connection() as conn:
        _check_idle(conn)
        with conn.transaction():
            yield conn


@contextmanager
def _sqlalchemy_transaction(conn_or_session: Any) -> Iterator[Any]:
    with conn_or_session.begin():
        yield conn_or_session


def _check_idle(conn: Any) -> None:
    """psycopg opens a SAVEPOINT inside a transaction already open; DSQL refuses savepoints, so say it plainly."""
    from psycopg.pq import TransactionStatus

    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise ValueError(
            "run_transaction needs a connection with no transaction open (DSQL has no savepoints): commit or roll "
            "back first, or connect with autocommit=True"
        )


# ------------------------------------------------------------------------------------------ async runner


async def run_transaction_async(
    conn_or_pool: Any,
    fn: Callable[[Any], Awaitable[T]],
    *,
    retries: int = 3,
    backoff: Backoff | None = None,
    stats: RetryStats | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    random: Callable[[], float] | None = None,
) -> T:
    """:func:`run_transaction` for asyncio: ``await fn(conn)`` inside one transaction, retried on OCC conflicts.

    ``conn_or_pool``: a psycopg ``AsyncConnection`` or ``AsyncConnectionPool``, or an asyncpg ``Connection`` or
    ``Pool`` (a connection per attempt from a pool). ``sleep`` defaults to :func:`asyncio.sleep`."""
    _check_retries(retries)
    transaction = _async_transaction(conn_or_pool)
    chosen_backoff = backoff or Backoff()
    retry = 0
    while True:
        try:
            async with transaction() as conn:
                result = await fn(conn)
        except Exception as exc:
            if not is_occ_conflict(exc):
                raise
            if retry >= retries:
                _give_up(exc, retry + 1, stats)
                raise
            if stats is not None:
                stats.count_conflict()
            await (sleep or asyncio.sleep)(chosen_backoff.delay(retry, random))
            retry += 1
            continue
        if stats is not None:
            stats.count_commit()
        return result


def _async_transaction(target: Any) -> Callable[[], AbstractAsyncContextManager[Any]]:
    if _is_instance(target, "psycopg", "AsyncConnection"):
        return lambda: _psycopg_async_transaction(target)
    if _is_instance(target, "psycopg_pool", "AsyncConnectionPool"):
        return lambda: _psycopg_async_pool_transaction(target)
    if _is_instance(target, "asyncpg", "Connection") or _is_instance(target, "asyncpg.pool", "PoolConnectionProxy"):
        return lambda: _asyncpg_transaction(target)
    if _is_instance(target, "asyncpg", "Pool"):
        return lambda: _asyncpg_pool_transaction(target)
    raise TypeError(f"run_transaction_async needs {SUPPORTED_ASYNC}, got {type(target).__name__}")


@asynccontextmanager
async def _psycopg_async_transaction(conn: Any) -> Any:
    _check_idle(conn)
    async with conn.transaction():
        yield conn


@asynccontextmanager
async def _psycopg_async_pool_transaction(pool: Any) -> Any:
    async with pool.connection() as conn:
        _check_idle(conn)
        async with conn.transaction():
            yield conn


@asynccontextmanager
async def _asyncpg_transaction(conn: Any) -> Any:
    async with conn.transaction():
        yield conn


@asynccontextmanager
async def _asyncpg_pool_transaction(pool: Any) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        yield conn


# --------------------------------------------------------------------------------------------- shared


def _check_retries(retries: int) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number >= 0, got: {retries!r}")


def _give_up(exc: BaseException, attempts: int, stats: RetryStats | None) -> None:
    if stats is not None:
        stats.count_give_up()
    if hasattr(exc, "add_note"):  # Python >= 3.11
        exc.add_note(f"run_transaction gave up after {attempts} attempts, each an OCC conflict")


def _is_instance(value: Any, module: str, name: str) -> bool:
    loaded = sys.modules.get(module)
    cls = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(cls, type) and isinstance(value, cls)

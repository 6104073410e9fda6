"""Aurora DSQL from Python: connections that sign a fresh IAM token each, and transactions retried on DSQL's
optimistic-concurrency conflicts.

    from sigv4_proxy.dsql import connect, run_transaction

    with connect("abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", autocommit=True) as conn:
        run_transaction(conn, lambda c: c.execute("UPDATE t SET n = n + 1 WHERE id = 1"))

Drivers are optional extras: psycopg 3 (``[psycopg]``: :func:`connect`, :func:`connect_async`,
:class:`DsqlConnection`, :func:`create_pool`, ...), asyncpg (``[asyncpg]``), SQLAlchemy over psycopg
(``[sqlalchemy]``). A helper whose driver is missing raises :class:`sigv4_proxy.errors.MissingExtraError` naming
the extra. :func:`run_transaction`, :class:`Backoff`, :class:`RetryStats`, :func:`is_occ_conflict` and
:func:`diagnosis_of` need no driver. The guide: docs/python.md (``sigv4-proxy help python``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sigv4_proxy._lazy import lazy_exports

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "connect": "sigv4_proxy.dsql._psycopg",
    "connect_async": "sigv4_proxy.dsql._psycopg",
    "create_pool": "sigv4_proxy.dsql._psycopg",
    "create_async_pool": "sigv4_proxy.dsql._psycopg",
    "DsqlConnection": "sigv4_proxy.dsql._psycopg_connection",
    "AsyncDsqlConnection": "sigv4_proxy.dsql._psycopg_connection",
    "asyncpg_connect": "sigv4_proxy.dsql._asyncpg",
    "asyncpg_create_pool": "sigv4_proxy.dsql._asyncpg",
    "create_engine": "sigv4_proxy.dsql._sqlalchemy",
    "diagnosis_of": "sigv4_proxy.dsql._tokens",
    "Backoff": "sigv4_proxy.dsql._retry",
    "RetryStats": "sigv4_proxy.dsql._retry",
    "is_occ_conflict": "sigv4_proxy.dsql._retry",
    "run_transaction": "sigv4_proxy.dsql._retry",
    "run_transaction_async": "sigv4_proxy.dsql._retry",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.dsql._asyncpg import asyncpg_connect as asyncpg_connect
    from sigv4_proxy.dsql._asyncpg import asyncpg_create_pool as asyncpg_create_pool
    from sigv4_proxy.dsql._psycopg import connect as connect
    from sigv4_proxy.dsql._psycopg import connect_async as connect_async
    from sigv4_proxy.dsql._psycopg import create_async_pool as create_async_pool
    from sigv4_proxy.dsql._psycopg import create_pool as create_pool
    from sigv4_proxy.dsql._psycopg_connection import AsyncDsqlConnection as AsyncDsqlConnection
    from sigv4_proxy.dsql._psycopg_connection import DsqlConnection as DsqlConnection
    from sigv4_proxy.dsql._retry import Backoff as Backoff
    from sigv4_proxy.dsql._retry import RetryStats as RetryStats
    from sigv4_proxy.dsql._retry import is_occ_conflict as is_occ_conflict
    from sigv4_proxy.dsql._retry import run_transaction as run_transaction
    from sigv4_proxy.dsql._retry import run_transaction_async as run_transaction_async
    from sigv4_proxy.dsql._sqlalchemy import create_engine as create_engine
    from sigv4_proxy.dsql._tokens import diagnosis_of as diagnosis_of


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

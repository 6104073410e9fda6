"""psycopg 3 connection classes that sign a fresh DSQL token for every physical connection.

Usable wherever psycopg takes a connection class: ``psycopg_pool.ConnectionPool(hostname,
connection_class=DsqlConnection, kwargs={...})`` calls :meth:`DsqlConnection.connect` for each new connection.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from sigv4_proxy.extras import require

require("psycopg", "psycopg", "sigv4_proxy.dsql.DsqlConnection (and AsyncDsqlConnection)")

import psycopg  # noqa: E402  (after the check that names the extra)
from psycopg.rows import Row  # noqa: E402

from sigv4_proxy.dsql._tokens import (  # noqa: E402
    ConnectionTokens,
    attach_diagnosis,
    is_refused_login,
    split_helper_keywords,
)

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

if TYPE_CHECKING:  # pragma: no cover
    from psycopg.abc import AdaptContext
    from psycopg.cursor import Cursor
    from psycopg.cursor_async import AsyncCursor
    from psycopg.rows import AsyncRowFactory, RowFactory

DRIVER = "psycopg"


def _tokens(conninfo: str, kwargs: dict[str, Any]) -> ConnectionTokens:
    options, credentials = split_helper_keywords(kwargs)
    return ConnectionTokens.resolve(conninfo or None, options, kwargs, credentials=credentials, driver=DRIVER)


def _libpq(tokens: ConnectionTokens, token: str | None) -> dict[str, Any]:
    params = dict(tokens.spec.params)
    if token is not None:
        params["password"] = token
    return params


def _diagnose_refusal(exc: psycopg.OperationalError, tokens: ConnectionTokens, token: str | None) -> None:
    if token is not None and is_refused_login(exc):
        attach_diagnosis(exc, token, tokens.spec.user)


class DsqlConnection(psycopg.Connection[Row]):
    """A psycopg ``Connection`` whose :meth:`connect` takes what :func:`sigv4_proxy.dsql.connect` takes (a host,
    a cluster id, a DSN or URL; ``region``, ``profile``, ``expires_in``, ``credentials``, ``cluster_id``,
    ``iam_auth``) and signs a new token for each connection."""

    @classmethod
    def connect(
        cls,
        conninfo: str = "",
        *,
        autocommit: bool = False,
        prepare_threshold: int | None = 5,
        context: AdaptContext | None = None,
        row_factory: RowFactory[Row] | None = None,
        cursor_factory: type[Cursor[Row]] | None = None,
        **kwargs: Any,
    ) -> Self:
        tokens = _tokens(conninfo, dict(kwargs))
        token = tokens.mint()
        try:
            return super().connect(
                autocommit=autocommit,
                prepare_threshold=prepare_threshold,
                context=context,
                row_factory=row_factory,
                cursor_factory=cursor_factory,
                **_libpq(tokens, token),
            )
        except psycopg.OperationalError as exc:
            _diagnose_refusal(exc, tokens, token)
            raise


class AsyncDsqlConnection(psycopg.AsyncConnection[Row]):
    """:class:`DsqlConnection` for asyncio (``psycopg_pool.AsyncConnectionPool(connection_class=...)``); a
    credentials refresh runs in a thread, off the event loop."""

    @classmethod
    async def connect(
        cls,
        conninfo: str = "",
        *,
        autocommit: bool = False,
        prepare_threshold: int | None = 5,
        context: AdaptContext | None = None,
        row_factory: AsyncRowFactory[Row] | None = None,
        cursor_factory: type[AsyncCursor[Row]] | None = None,
        **kwargs: Any,
    ) -> Self:
        driver_kwargs = dict(kwargs)
        options, credentials = split_helper_keywords(driver_kwargs)
        tokens = ConnectionTokens.resolve(
            conninfo or None, options, driver_kwargs, credentials=credentials, driver=DRIVER, load_credentials=False
        )
        token = await tokens.mint_async()
        try:
            return await super().connect(
                autocommit=autocommit,
                prepare_threshold=prepare_threshold,
                context=context,
                row_factory=row_factory,
                cursor_factory=cursor_factory,
                **_libpq(tokens, token),
            )
        except psycopg.OperationalError as exc:
            _diagnose_refusal(exc, tokens, token)
            raise

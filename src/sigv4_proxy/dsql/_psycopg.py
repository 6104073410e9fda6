"""psycopg 3 helpers: connect (sync and async) and connection pools, a fresh DSQL token per physical connection.

The drivers are imported when a helper is called, so a missing one is a :class:`MissingExtraError` naming the
extra, not an ImportError at ``import sigv4_proxy.dsql``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from sigv4_proxy.dsql._params import HelperOptions
from sigv4_proxy.dsql._tokens import ConnectionTokens, helper_keywords
from sigv4_proxy.extras import require

if TYPE_CHECKING:  # pragma: no cover
    import psycopg
    import psycopg_pool

    from sigv4_proxy.credentials import CredentialSource

# DSQL ends a connection after one hour: a pool replaces its connections well before (50 minutes, with psycopg_pool's
# own jitter of up to 5 % less).
DEFAULT_MAX_LIFETIME = 3000.0


def connect(
    hostname: str,
    user: str | None = None,
    dbname: str | None = None,
    *,
    region: str | None = None,
    profile: str | None = None,
    expires_in: int | None = None,
    credentials: CredentialSource | None = None,
    cluster_id: str | None = None,
    iam_auth: bool = True,
    **libpq_kwargs: Any,
) -> psycopg.Connection[Any]:
    """A psycopg connection to Aurora DSQL, logged in with a new IAM token.

    ``hostname``: the cluster endpoint, a bare cluster id (with ``region``), a PrivateLink host, or a DSN / URL
    whose values are merged with the keywords (keywords win). ``user`` defaults to ``admin`` (signed
    ``DbConnectAdmin``; any other role ``DbConnect``), ``dbname`` to ``postgres``, ``expires_in`` to 900 s.
    ``credentials``: a :class:`sigv4_proxy.credentials.CredentialSource`; None: one shared refreshing provider
    per ``profile``. ``iam_auth=False`` sends no token (a local ``sigv4-proxy pg`` signs instead). Other keywords
    are libpq's (``hostaddr``, ``sslrootcert``, ``connect_timeout``, ...) or psycopg's (``autocommit``, ...).
    """
    require("psycopg", "psycopg", "sigv4_proxy.dsql.connect")
    from sigv4_proxy.dsql._psycopg_connection import DsqlConnection

    options = HelperOptions(user, dbname, region, profile, expires_in, cluster_id, iam_auth)
    return DsqlConnection.connect(hostname, **helper_keywords(options, credentials), **libpq_kwargs)


async def connect_async(
    hostname: str,
    user: str | None = None,
    dbname: str | None = None,
    *,
    region: str | None = None,
    profile: str | None = None,
    expires_in: int | None = None,
    credentials: CredentialSource | None = None,
    cluster_id: str | None = None,
    iam_auth: bool = True,
    **libpq_kwargs: Any,
) -> psycopg.AsyncConnection[Any]:
    """:func:`connect` for asyncio: a psycopg ``AsyncConnection``."""
    require("psycopg", "psycopg", "sigv4_proxy.dsql.connect_async")
    from sigv4_proxy.dsql._psycopg_connection import AsyncDsqlConnection

    options = HelperOptions(user, dbname, region, profile, expires_in, cluster_id, iam_auth)
    return await AsyncDsqlConnection.connect(hostname, **helper_keywords(options, credentials), **libpq_kwargs)


def create_pool(
    hostname: str,
    user: str | None = None,
    dbname: str | None = None,
    *,
    region: str | None = None,
    profile: str | None = None,
    expires_in: int | None = None,
    credentials: CredentialSource | None = None,
    cluster_id: str | None = None,
    iam_auth: bool = True,
    min_size: int = 1,
    max_size: int = 10,
    max_lifetime: float = DEFAULT_MAX_LIFETIME,
    open: bool = True,
    **kwargs: Any,
) -> psycopg_pool.ConnectionPool[Any]:
    """A ``psycopg_pool.ConnectionPool`` of :class:`DsqlConnection`: each new connection signs its own token;
    connections are replaced after ``max_lifetime`` seconds (DSQL closes them at one hour). Keywords that are
    ``ConnectionPool``'s (``timeout``, ``name``, ``configure``, ...) go to the pool, the others to each
    connection. The parameters and credentials are checked now, before any connection is attempted."""
    pool_module = require("psycopg_pool", "psycopg", "sigv4_proxy.dsql.create_pool")
    require("psycopg", "psycopg", "sigv4_proxy.dsql.create_pool")
    from sigv4_proxy.dsql._psycopg_connection import DsqlConnection

    options = HelperOptions(user, dbname, region, profile, expires_in, cluster_id, iam_auth)
    sizes = {"min_size": min_size, "max_size": max_size, "max_lifetime": max_lifetime, "open": open}
    return _pool(pool_module.ConnectionPool, DsqlConnection, hostname, options, credentials, kwargs, sizes, True)


def create_async_pool(
    hostname: str,
    user: str | None = None,
    dbname: str | None = None,
    *,
    region: str | None = None,
    profile: str | None = None,
    expires_in: int | None = None,
    credentials: CredentialSource | None = None,
    cluster_id: str | None = None,
    iam_auth: bool = True,
    min_size: int = 1,
    max_size: int = 10,
    max_lifetime: float = DEFAULT_MAX_LIFETIME,
    **kwargs: Any,
) -> psycopg_pool.AsyncConnectionPool[Any]:
    """:func:`create_pool` for asyncio: a ``psycopg_pool.AsyncConnectionPool`` of :class:`AsyncDsqlConnection`,
    not opened (``async with pool:`` or ``await pool.open()``). The parameters are checked now; the credentials
    when the first connection is made."""
    pool_module = require("psycopg_pool", "psycopg", "sigv4_proxy.dsql.create_async_pool")
    require("psycopg", "psycopg", "sigv4_proxy.dsql.create_async_pool")
    from sigv4_proxy.dsql._psycopg_connection import AsyncDsqlConnection

    options = HelperOptions(user, dbname, region, profile, expires_in, cluster_id, iam_auth)
    sizes = {"min_size": min_size, "max_size": max_size, "max_lifetime": max_lifetime, "open": False}
    # Credentials are loaded with the first connection, not here: loading may do I/O (SSO, STS), and an asyncio
    # caller must not block its loop on it.
    return _pool(
        pool_module.AsyncConnectionPool, AsyncDsqlConnection, hostname, options, credentials, kwargs, sizes, False
    )


def _pool(
    pool_class: Any,
    connection_class: type,
    hostname: str,
    options: HelperOptions,
    credentials: CredentialSource | None,
    kwargs: dict[str, Any],
    sizes: dict[str, Any],
    load_credentials: bool,
) -> Any:
    """A pool of ``connection_class`` (each connection signs its own token), the parameters checked now (and,
    with ``load_credentials``, the credentials: a CredentialsError before any dial)."""
    pool_kwargs, connection_kwargs = _split_pool_kwargs(pool_class, kwargs)
    ConnectionTokens.resolve(
        hostname,
        options,
        connection_kwargs,
        credentials=credentials,
        driver="psycopg",
        load_credentials=load_credentials,
    )
    return pool_class(
        hostname,
        connection_class=connection_class,
        kwargs={**connection_kwargs, **helper_keywords(options, credentials)},
        **sizes,
        **pool_kwargs,
    )


def _split_pool_kwargs(pool_class: type, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the pool's own keywords, the connections' keywords), by the pool class's signature."""
    pool_names = set(inspect.signature(pool_class).parameters) - {"conninfo", "kwargs"}
    pool_kwargs = {key: value for key, value in kwargs.items() if key in pool_names}
    return pool_kwargs, {key: value for key, value in kwargs.items() if key not in pool_names}

"""SQLAlchemy over psycopg 3: an engine whose every new DBAPI connection signs a fresh DSQL token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sigv4_proxy.dsql._params import HelperOptions, looks_like_conninfo
from sigv4_proxy.dsql._tokens import ConnectionTokens, helper_keywords
from sigv4_proxy.errors import ConfigError
from sigv4_proxy.extras import require

if TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy

    from sigv4_proxy.credentials import CredentialSource

# DSQL ends a connection after one hour: the engine's pool replaces its connections after 50 minutes.
DEFAULT_POOL_RECYCLE = 3000
_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
FEATURE = "sigv4_proxy.dsql.create_engine"


def create_engine(
    hostname_or_url: str,
    user: str | None = None,
    dbname: str | None = None,
    *,
    region: str | None = None,
    profile: str | None = None,
    expires_in: int | None = None,
    credentials: CredentialSource | None = None,
    cluster_id: str | None = None,
    iam_auth: bool = True,
    pool_recycle: int = DEFAULT_POOL_RECYCLE,
    **engine_kwargs: Any,
) -> sqlalchemy.Engine:
    """A SQLAlchemy ``Engine`` (dialect ``postgresql+psycopg``) for Aurora DSQL: a new token on each connect,
    ``pool_pre_ping`` on, connections recycled after ``pool_recycle`` seconds (DSQL closes them at one hour).

    ``hostname_or_url``: what :func:`sigv4_proxy.dsql.connect` takes, or a ``postgresql+psycopg://`` URL.
    libpq's parameters go in the URL's query or in ``connect_args``; the other keywords are
    ``sqlalchemy.create_engine``'s. ``use_native_hstore`` defaults to False: SQLAlchemy's hstore probe opens a
    SAVEPOINT, which DSQL refuses. The parameters and credentials are checked now, before any connection."""
    sqlalchemy_module = require("sqlalchemy", "sqlalchemy", FEATURE)
    require("psycopg", "sqlalchemy", FEATURE)
    from sigv4_proxy.dsql._psycopg_connection import DsqlConnection

    hostname = _libpq_form(hostname_or_url)
    connect_args = dict(engine_kwargs.pop("connect_args", None) or {})
    options = HelperOptions(user, dbname, region, profile, expires_in, cluster_id, iam_auth)
    ConnectionTokens.resolve(hostname, options, connect_args, credentials=credentials, driver="sqlalchemy")
    keywords = {**connect_args, **helper_keywords(options, credentials)}

    def new_connection() -> Any:
        return DsqlConnection.connect(hostname, **keywords)

    engine_kwargs.setdefault("pool_pre_ping", True)
    engine_kwargs.setdefault("use_native_hstore", False)
    return sqlalchemy_module.create_engine(
        "postgresql+psycopg://", creator=new_connection, pool_recycle=pool_recycle, **engine_kwargs
    )


def _libpq_form(hostname_or_url: str) -> str:
    """A SQLAlchemy URL's driver part is ours to check: only psycopg (3) is wired up."""
    if not looks_like_conninfo(hostname_or_url) or "://" not in hostname_or_url:
        return hostname_or_url
    lowered = hostname_or_url.lower()
    if not lowered.startswith(_SCHEMES):
        scheme = hostname_or_url.split("://", 1)[0]
        raise ConfigError([f"create_engine works with postgresql+psycopg:// URLs (psycopg 3), got {scheme}://"])
    return hostname_or_url

"""asyncpg helpers: a connection and a pool that sign a fresh DSQL token for every physical connection.

asyncpg has no ``hostaddr``: it names the address it dials as the TLS server name. DSQL needs the cluster host
there (SNI, and the certificate check), so the SSL context sends ``host`` whatever address is dialled, as libpq
does with ``host`` and ``hostaddr``.
"""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sigv4_proxy.dsql._params import DEFAULT_SSLROOTCERT, HelperOptions
from sigv4_proxy.dsql._tokens import ConnectionTokens, attach_diagnosis, is_refused_login
from sigv4_proxy.errors import ConfigError
from sigv4_proxy.extras import require

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.credentials import CredentialSource

DRIVER = "asyncpg"
# libpq's names this module translates for asyncpg; asyncpg's own keywords pass through as they are.
_LIBPQ_NAMES = frozenset(
    {"host", "hostaddr", "port", "sslmode", "sslrootcert", "sslnegotiation", "options", "application_name"}
)
_CONNECT_TIMEOUT = "connect_timeout"


class _ServerNameContext(ssl.SSLContext):
    """Sends ``server_name`` as SNI (and checks the certificate against it) whatever address asyncpg dials."""

    server_name: str = ""

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name or server_hostname, session)


def ssl_for(params: Mapping[str, Any]) -> ssl.SSLContext | str | bool:
    """asyncpg's ``ssl`` argument for libpq's sslmode and sslrootcert (``system``: the default trust store)."""
    sslmode = params.get("sslmode", "verify-full")
    if sslmode == "disable":
        return False
    if sslmode in ("allow", "prefer"):
        return str(sslmode)  # asyncpg's own modes: iam_auth=False only (a token never goes over them)
    context = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = str(params["host"])
    if sslmode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    rootcert = str(params.get("sslrootcert", DEFAULT_SSLROOTCERT))
    if rootcert == DEFAULT_SSLROOTCERT:
        context.load_default_certs()
    else:
        context.load_verify_locations(rootcert)
    context.check_hostname = sslmode == "verify-full"
    return context


def _split_kwargs(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(libpq-named parameters for the resolver, asyncpg's own keywords)."""
    libpq = {key: value for key, value in kwargs.items() if key in _LIBPQ_NAMES or key == _CONNECT_TIMEOUT}
    return libpq, {key: value for key, value in kwargs.items() if key not in libpq}


def connect_arguments(tokens: ConnectionTokens, own: Mapping[str, Any]) -> dict[str, Any]:
    """asyncpg.connect's keywords (no password) for the resolved parameters and the caller's asyncpg keywords."""
    params = dict(tokens.spec.params)
    unsupported = sorted(
        set(params) - _LIBPQ_NAMES - {"user", "dbname", "password", _CONNECT_TIMEOUT},
    )
    if unsupported:
        raise ConfigError([f"asyncpg does not take libpq's {', '.join(unsupported)}: leave them out of the DSN"])
    server_settings = {"application_name": str(params["application_name"])}
    if params.get("options"):
        server_settings["options"] = str(params["options"])  # the startup packet's `options`, as libpq sends it
    arguments: dict[str, Any] = {
        "host": params.get("hostaddr") or params["host"],
        "port": int(params["port"]),
        "user": tokens.spec.user,
        "database": tokens.spec.dbname,
        "ssl": ssl_for(params),
        "direct_tls": params.get("sslnegotiation") == "direct",
        "server_settings": {**server_settings, **dict(own.get("server_settings") or {})},
    }
    if _CONNECT_TIMEOUT in params:
        arguments["timeout"] = float(params[_CONNECT_TIMEOUT])
    if "password" in params:  # iam_auth=False only (with IAM authentication a password is refused)
        arguments["password"] = params["password"]
    return {**arguments, **{key: value for key, value in own.items() if key != "server_settings"}}


async def asyncpg_connect(
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
    **asyncpg_kwargs: Any,
) -> Any:
    """An asyncpg ``Connection`` to Aurora DSQL with a new IAM token. Takes what :func:`sigv4_proxy.dsql.connect`
    takes; libpq's ``hostaddr``, ``sslmode``, ``sslrootcert``, ``sslnegotiation``, ``options``,
    ``application_name`` and ``connect_timeout`` are translated, other keywords are asyncpg's (``timeout``,
    ``command_timeout``, ``statement_cache_size``, ``server_settings``, ...)."""
    asyncpg = require("asyncpg", "asyncpg", "sigv4_proxy.dsql.asyncpg_connect")
    tokens, arguments = _prepare(
        hostname, user, dbname, region, profile, expires_in, cluster_id, iam_auth, credentials, asyncpg_kwargs
    )
    token = await tokens.mint_async()
    if token is not None:
        arguments["password"] = token
    try:
        return await asyncpg.connect(**arguments)
    except asyncpg.PostgresError as exc:
        if token is not None and is_refused_login(exc):
            attach_diagnosis(exc, token, tokens.spec.user)
        raise


async def asyncpg_create_pool(
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
    **asyncpg_kwargs: Any,
) -> Any:
    """An asyncpg ``Pool`` (created and opened) whose every new connection signs its own token (asyncpg calls the
    password function for each). Keywords that are ``asyncpg.create_pool``'s (``max_queries``,
    ``max_inactive_connection_lifetime``, ``init``, ``setup``, ``reset``, ...) go to the pool; ``reset`` defaults to
    :func:`reset_session` (``RESET ALL``: asyncpg's own reset uses statements DSQL refuses). The credentials are loaded
    before the first connection is attempted. DSQL closes a connection after one hour; asyncpg replaces a closed
    one when it is next acquired."""
    asyncpg = require("asyncpg", "asyncpg", "sigv4_proxy.dsql.asyncpg_create_pool")
    pool_names = set(inspect.signature(asyncpg.create_pool).parameters) - {"dsn", "connect_kwargs"}
    pool_kwargs = {key: value for key, value in asyncpg_kwargs.items() if key in pool_names}
    connect_kwargs = {key: value for key, value in asyncpg_kwargs.items() if key not in pool_names}
    tokens, arguments = _prepare(
        hostname, user, dbname, region, profile, expires_in, cluster_id, iam_auth, credentials, connect_kwargs
    )
    if tokens.spec.target is not None:
        await tokens.mint_async()  # loads the credentials: a CredentialsError now, not in the pool's tasks
        arguments["password"] = tokens.mint_async
    pool_kwargs.setdefault("reset", reset_session)
    return await asyncpg.create_pool(min_size=min_size, max_size=max_size, **pool_kwargs, **arguments)


async def reset_session(conn: Any) -> None:
    """What a connection runs when it goes back to the pool (after asyncpg's rollback). asyncpg's default also
    sends ``UNLISTEN *``, ``CLOSE ALL`` and ``pg_advisory_unlock_all()``, which DSQL refuses (``0A000``), and the
    failed reset would close every connection on release."""
    await conn.execute("RESET ALL")


def _prepare(
    hostname: str,
    user: str | None,
    dbname: str | None,
    region: str | None,
    profile: str | None,
    expires_in: int | None,
    cluster_id: str | None,
    iam_auth: bool,
    credentials: CredentialSource | None,
    kwargs: Mapping[str, Any],
) -> tuple[ConnectionTokens, dict[str, Any]]:
    libpq, own = _split_kwargs(kwargs)
    options = HelperOptions(user, dbname, region, profile, expires_in, cluster_id, iam_auth)
    tokens = ConnectionTokens.resolve(
        hostname, options, libpq, credentials=credentials, driver=DRIVER, load_credentials=False
    )
    return tokens, connect_arguments(tokens, own)
